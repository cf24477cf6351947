// The SPA: oidc-client-ts (the global `oidc` from its browser bundle) does
// discovery, code + PKCE, ID token checks, refresh and sign-out; this
// script only wires the buttons. Tokens live in sessionStorage, the
// library's default: gone when the tab closes.
"use strict";

(async () => {
  const $ = (id) => document.getElementById(id);
  const cfg = await (await fetch("/config.json")).json();
  const mgr = new oidc.UserManager({
    authority: cfg.authority,
    client_id: cfg.client_id,
    redirect_uri: cfg.redirect_uri,
    post_logout_redirect_uri: cfg.post_logout_redirect_uri,
    response_type: "code",
    scope: cfg.scope,
    // Renewal is a button here so it can be seen; a real app would
    // leave automaticSilentRenew on and let the library refresh before
    // the access token expires. With a refresh token, signinSilent
    // redeems it (one-time: the server rotates it) and needs no iframe.
    automaticSilentRenew: false,
  });
  let refreshes = 0;

  const show = (user, status) => {
    $("status").textContent = status;
    $("signed-in").hidden = !user;
    $("signed-out").hidden = !!user;
    if (user) {
      $("name").textContent = user.profile.name || user.profile.sub;
      $("token-tail").textContent = user.access_token.slice(-8);
      $("refreshes").textContent = String(refreshes);
    }
  };
  const fail = (what, err) => { $("error").textContent = what + ": " + (err && err.message || err); };

  $("sign-in").addEventListener("click", () => mgr.signinRedirect().catch((e) => fail("sign-in", e)));
  $("sign-out").addEventListener("click", () => mgr.signoutRedirect().catch((e) => fail("sign-out", e)));
  $("refresh").addEventListener("click", async () => {
    try {
      const user = await mgr.signinSilent();
      refreshes++;
      show(user, "Token refreshed.");
    } catch (e) { fail("refresh", e); }
  });
  $("call-api").addEventListener("click", async () => {
    try {
      const user = await mgr.getUser();
      const resp = await fetch(cfg.api_url, { headers: { Authorization: "Bearer " + user.access_token } });
      $("api-result").textContent = resp.status + "\n" + await resp.text();
    } catch (e) { fail("API call", e); }
  });

  try {
    const path = window.location.pathname;
    if (path === new URL(cfg.redirect_uri).pathname) {
      await mgr.signinRedirectCallback();
      window.history.replaceState(null, "", "/");
    } else if (path === new URL(cfg.post_logout_redirect_uri).pathname) {
      await mgr.signoutRedirectCallback();
      window.history.replaceState(null, "", "/");
      show(null, "Signed out.");
      return;
    }
    const user = await mgr.getUser();
    show(user, user ? "Signed in." : "Not signed in.");
  } catch (e) {
    show(null, "Not signed in.");
    fail("sign-in", e);
  }
})();

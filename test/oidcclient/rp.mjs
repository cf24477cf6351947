// A relying party built on openid-client, the OpenID Connect library Node
// apps use, driven by test/oidc_test.go. It prints one JSON object per line:
// {"authorize": URL} when it wants the user to sign in (the test answers
// with the callback URL on stdin), then {"result": ...} or {"error": ...}.
//
// Usage: node rp.mjs ISSUER CLIENT_ID REDIRECT_URI POST_LOGOUT_URI [wrong-nonce]
import * as client from 'openid-client';
import * as readline from 'node:readline';

const [issuer, clientId, redirectUri, postLogoutUri, mode] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

try {
  // Loopback http is the test's; production issuers are https.
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), {
    execute: [client.allowInsecureRequests],
  });
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  say({ authorize: url.href });
  const { value: callback } = await lines.next();
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedNonce: mode === 'wrong-nonce' ? client.randomNonce() : nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const endSession = client.buildEndSessionUrl(config, {
    id_token_hint: refreshed.id_token,
    post_logout_redirect_uri: postLogoutUri,
    state: 'bye',
  });
  say({
    result: {
      metadata: config.serverMetadata(),
      claims,
      id_token: tokens.id_token,
      userinfo,
      refreshed_claims: refreshed.claims(),
      refreshed_id_token: refreshed.id_token,
      refreshed_access_token: refreshed.access_token,
      end_session_url: endSession.href,
    },
  });
} catch (e) {
  say({ error: `${e.name}: ${e.message}${e.cause?.message ? ': ' + e.cause.message : ''}` });
}
process.exit(0);

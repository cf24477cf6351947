// Command samlidp is the SAML identity provider of Postern's end-to-end
// tests: crewjam/saml's samlidp with an in-memory store, one user and a key
// pair of its own. It listens on 127.0.0.1, prints
//
//	samlidp listening on http://127.0.0.1:PORT
//
// and serves its metadata at /metadata. Service providers are registered
// by PUTting their metadata to /services/{id} (the test does this with
// Postern's /saml/{id}/metadata), so metadata is traded both ways.
//
// One thing differs from samlidp's own login: samlidp re-posts the
// AuthnRequest from its login form without the HTTP-Redirect signature,
// which it then refuses from a service provider whose metadata says it
// signs its requests, as Postern's does. So the login form here posts the
// credentials to /authn, which starts the session and sends the browser
// back to the signed /sso URL it came from.
//
// The NameID is the username (persistent format), so Postern's subject is
// "corp:alice"; mail (urn:oid:0.9.2342.19200300.100.1.3) and cn
// (urn:oid:2.5.4.3) are among the attributes.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"flag"
	"fmt"
	"html/template"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
	"golang.org/x/crypto/bcrypt"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	user := flag.String("user", "alice", "the one user's name (and NameID)")
	password := flag.String("password", "alice-idp-password", "the user's password")
	email := flag.String("email", "alice@corp.example", "the user's email address")
	name := flag.String("name", "Alice Corp", "the user's common name")
	flag.Parse()
	if err := run(*addr, samlidp.User{Name: *user, Email: *email, CommonName: *name}, *password); err != nil {
		fmt.Fprintln(os.Stderr, "samlidp:", err)
		os.Exit(1)
	}
}

func run(addr string, user samlidp.User, password string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	base, _ := url.Parse("http://" + ln.Addr().String())
	key, cert, err := keyPair()
	if err != nil {
		return err
	}
	logger := log.New(os.Stderr, "samlidp: ", log.LstdFlags)
	store := &samlidp.MemoryStore{}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	user.HashedPassword = hash
	if err := store.Put("/users/"+user.Name, user); err != nil {
		return err
	}
	idp, err := samlidp.New(samlidp.Options{URL: *base, Key: key, Signer: key, Certificate: cert, Store: store, Logger: logger})
	if err != nil {
		return err
	}
	sessions := &sessions{store: store, byID: map[string]saml.Session{}}
	idp.IDP.SessionProvider = sessions

	mux := http.NewServeMux()
	mux.Handle("/", idp)
	mux.HandleFunc("POST /authn", sessions.authn)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Printf("samlidp listening on %s\n", base)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

func keyPair() (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "Postern test IdP"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

const cookieName = "testidp_session"

// sessions is the IdP's saml.SessionProvider: login sessions in memory,
// users from the samlidp store.
type sessions struct {
	store samlidp.Store
	mu    sync.Mutex
	byID  map[string]saml.Session
}

var loginForm = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><title>Corp IdP sign-in</title></head>
<body>
<h1>Corp IdP</h1>
{{if .Error}}<p id="error">{{.Error}}</p>{{end}}
<form method="post" action="/authn">
<input type="hidden" name="return" value="{{.Return}}">
<label>User <input id="user" type="text" name="user"></label>
<label>Password <input id="password" type="password" name="password"></label>
<input id="login" type="submit" value="Log In">
</form>
</body></html>`))

// GetSession returns the browser's session, or shows the login form.
func (s *sessions) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	if c, err := r.Cookie(cookieName); err == nil {
		s.mu.Lock()
		sess, ok := s.byID[c.Value]
		s.mu.Unlock()
		if ok && time.Now().Before(sess.ExpireTime) {
			return &sess
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginForm.Execute(w, map[string]string{"Return": r.URL.RequestURI()})
	return nil
}

// authn checks the credentials, starts a session and returns to /sso.
func (s *sessions) authn(w http.ResponseWriter, r *http.Request) {
	ret := r.PostFormValue("return")
	if !strings.HasPrefix(ret, "/sso?") {
		http.Error(w, "bad return URL", http.StatusBadRequest)
		return
	}
	var u samlidp.User
	if err := s.store.Get("/users/"+r.PostFormValue("user"), &u); err != nil || bcrypt.CompareHashAndPassword(u.HashedPassword, []byte(r.PostFormValue("password"))) != nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_ = loginForm.Execute(w, map[string]string{"Return": ret, "Error": "Invalid username or password"})
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	now := time.Now()
	sess := saml.Session{
		ID: hex.EncodeToString(b), CreateTime: now, ExpireTime: now.Add(time.Hour), Index: hex.EncodeToString(b[:8]),
		NameID: u.Name, NameIDFormat: string(saml.PersistentNameIDFormat),
		UserName: u.Name, UserEmail: u.Email, UserCommonName: u.CommonName,
	}
	s.mu.Lock()
	s.byID[sess.ID] = sess
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: sess.ID, Path: "/", HttpOnly: true})
	http.Redirect(w, r, ret, http.StatusSeeOther)
}

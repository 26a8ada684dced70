package node

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

// webReq sends a request to s's handler with this server's Host.
func webReq(s *APIServer, method, path, origin, body string, cookie *http.Cookie, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Host = s.ln.Addr().String()
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

// mintToken asks for a login URL with the bearer token and returns its token.
func mintToken(t testing.TB, s *APIServer, bearer string) string {
	t.Helper()
	w := webReq(s, "POST", "/v1/"+api.EpWebLogin.Method, "", "{}", nil, "Bearer "+bearer)
	if w.Code != 200 {
		t.Fatalf("web/login: %d %s", w.Code, w.Body)
	}
	_, tok, ok := strings.Cut(w.Body.String(), "#login=")
	if !ok {
		t.Fatalf("web/login answered %s", w.Body)
	}
	tok, _, _ = strings.Cut(tok, `"`)
	return tok
}

// TestWebLogin: a login token opens one session, once, while it is valid;
// the session cookie opens the API only with this server's Origin on
// requests that change something; pages carry the security headers.
func TestWebLogin(t *testing.T) {
	const bearer = "0123456789abcdef"
	s := startTestAPI(t, bearer)
	origin := s.URL()
	session := func(tok string) *httptest.ResponseRecorder {
		return webReq(s, "POST", "/web/session", origin, `{"token":"`+tok+`"}`, nil, "")
	}

	if w := webReq(s, "POST", "/v1/"+api.EpWebLogin.Method, "", "{}", nil, ""); w.Code != 403 {
		t.Fatalf("web/login without the API token: %d", w.Code)
	}
	tok := mintToken(t, s, bearer)
	if w := session(strings.Repeat("0", len(tok))); w.Code != 403 || len(w.Result().Cookies()) != 0 {
		t.Fatalf("a wrong token: %d, cookies %v", w.Code, w.Result().Cookies())
	}
	if w := webReq(s, "POST", "/web/session", "", `{"token":"`+tok+`"}`, nil, ""); w.Code != 403 {
		t.Fatalf("a login without an Origin: %d", w.Code)
	}
	if w := webReq(s, "POST", "/web/session", "http://evil.example", `{"token":"`+tok+`"}`, nil, ""); w.Code != 403 {
		t.Fatalf("a login from a foreign Origin: %d", w.Code)
	}
	w := session(tok)
	if w.Code != 200 || len(w.Result().Cookies()) != 1 {
		t.Fatalf("the token: %d %s, cookies %v", w.Code, w.Body, w.Result().Cookies())
	}
	c := w.Result().Cookies()[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("cookie %v", c)
	}
	if w := session(tok); w.Code != 403 || len(w.Result().Cookies()) != 0 {
		t.Fatalf("the token again: %d", w.Code)
	}

	// An expired token.
	old := mintToken(t, s, bearer)
	s.web.mu.Lock()
	s.web.tokens[webHash(old)] = time.Now().Add(-time.Second)
	s.web.mu.Unlock()
	if w := session(old); w.Code != 403 {
		t.Fatalf("an expired token: %d", w.Code)
	}

	api := "/v1/" + api.EpDisconnect.Method
	body := `{"peer_id":"x"}`
	for _, tc := range []struct {
		name   string
		origin string
		cookie *http.Cookie
		auth   string
		want   int
	}{
		{"cookie, own origin", origin, c, "", 200},
		{"cookie, no origin", "", c, "", 403},
		{"cookie, foreign origin", "http://evil.example", c, "", 403},
		{"cookie, null origin", "null", c, "", 403},
		{"wrong cookie", origin, &http.Cookie{Name: c.Name, Value: strings.Repeat("a", len(c.Value))}, "", 403},
		{"cookie of another port", origin, &http.Cookie{Name: "parley_session_1", Value: c.Value}, "", 403},
		{"cookie with a wrong bearer", origin, c, "Bearer nope", 403},
	} {
		if w := webReq(s, "POST", api, tc.origin, body, tc.cookie, tc.auth); w.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.want)
		}
	}

	// Pages: headers, favicon, no path out of the embedded folder.
	w = webReq(s, "GET", "/", "", "", nil, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `src="/app.js"`) {
		t.Fatalf("GET /: %d", w.Code)
	}
	h := w.Result().Header
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers %v", h)
	}
	if w := webReq(s, "GET", "/favicon.svg", "", "", nil, ""); w.Code != 200 || w.Result().Header.Get("Content-Type") != "image/svg+xml" {
		t.Errorf("favicon: %d %s", w.Code, w.Result().Header.Get("Content-Type"))
	}
	if w := webReq(s, "GET", "/app.js", "", "", nil, ""); !strings.HasPrefix(w.Result().Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("app.js: %s", w.Result().Header.Get("Content-Type"))
	}
	for _, p := range []string{"/../web.go", "/web.go", "/nothing.js", "/web/../web.go"} {
		if w := webReq(s, "GET", p, "", "", nil, ""); w.Code == 200 {
			t.Errorf("GET %s: 200", p)
		}
	}
	// The web routes need the session.
	for _, p := range []string{"/web/events", "/web/file?room=x&event=y", "/web/blob?cid=x&key=y"} {
		if w := webReq(s, "GET", p, "", "", nil, ""); w.Code != 403 {
			t.Errorf("GET %s without a session: %d", p, w.Code)
		}
	}
	if w := webReq(s, "POST", "/web/upload?room=x&name=a", origin, "data", nil, ""); w.Code != 403 {
		t.Errorf("upload without a session: %d", w.Code)
	}
	if w := webReq(s, "POST", "/web/upload?room=x&name=a", "", "data", c, ""); w.Code != 403 {
		t.Errorf("upload with the cookie and no Origin: %d", w.Code)
	}
	// A wrong Host is refused before anything else.
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = "evil.example:80"
	rw := httptest.NewRecorder()
	s.ServeHTTP(rw, req)
	if rw.Code != 403 {
		t.Errorf("GET / with a foreign Host: %d", rw.Code)
	}
}

// FuzzWebSession: no body opens a session but the one holding a live
// token, and none crashes the server.
func FuzzWebSession(f *testing.F) {
	const bearer = "0123456789abcdef"
	s := startTestAPI(f, bearer)
	for _, seed := range []string{`{"token":"x"}`, `{}`, ``, `{"token":""}`, `{"token":1}`, `[`, `{"token":"a","x":1}`, strings.Repeat("{", 5000)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		tok := mintToken(t, s, bearer)
		w := webReq(s, "POST", "/web/session", s.URL(), body, nil, "")
		if w.Code == 200 && !strings.Contains(body, tok) {
			t.Fatalf("body %q opened a session", body)
		}
	})
}

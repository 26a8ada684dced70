package node

// The web app (docs/web.md): the daemon serves a browser client from files
// embedded in the binary, on the API address. A browser logs in with a
// single-use token from `parley open` (EpWebLogin) and gets a session
// cookie (HttpOnly, SameSite=Strict) that the API accepts like the bearer
// token; requests that change something with the cookie must carry this
// server's Origin. Besides the static files, the web routes are:
//
//	POST /web/session  {"token"}     trade a login token for the cookie
//	GET  /web/events                 the watch stream as server-sent events
//	GET  /web/file?room=&event=      a media message's file, decrypted
//	GET  /web/blob?cid=&key=         a blob (thumbnails), decrypted
//	POST /web/upload?room=&name=     the body sent as a file (send-file)
//
// This file must not hold room logic: it calls the API's own handlers.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/parley-p2p/parley/api"
)

//go:embed web
var webFiles embed.FS

const (
	// webDir is the home's folder for files on their way through (SetWebDir).
	webDir = "web-tmp"
	// webTokenTTL is how long a login URL of `parley open` stays valid.
	webTokenTTL = 10 * time.Minute
	// webMaxUpload bounds a file the browser sends.
	webMaxUpload = 512 << 20
	// webCSP is the Content-Security-Policy of every web response: nothing
	// from another origin, no inline script, no eval, no framing.
	webCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
		"media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " +
		"form-action 'self'; frame-ancestors 'none'"
)

// webAuth holds the login tokens and sessions of the web app, by the
// SHA-256 of their secret (so a map lookup leaks no timing of the secret).
type webAuth struct {
	mu       sync.Mutex
	tokens   map[string]time.Time // login token hash -> expiry
	sessions map[string]time.Time // session hash -> expiry
	dir      string               // where decrypted files pass through
	file     string               // where sessions are kept across restarts (SetWebSessions)
}

func webHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func webSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// SetWebDir names the folder (inside the home) where files pass through
// decrypted on their way to or from the browser; the default is the
// system's temporary folder.
func (s *APIServer) SetWebDir(dir string) {
	s.web.mu.Lock()
	s.web.dir = dir
	s.web.mu.Unlock()
}

// bindWeb binds EpWebLogin.
func (s *APIServer) bindWeb() {
	Handle(s, api.EpWebLogin, func(_ context.Context, _ api.Empty) (api.WebLoginResp, error) {
		tok := webSecret()
		exp := time.Now().Add(webTokenTTL)
		s.web.mu.Lock()
		if s.web.tokens == nil {
			s.web.tokens = map[string]time.Time{}
		}
		now := time.Now()
		for k, e := range s.web.tokens {
			if now.After(e) {
				delete(s.web.tokens, k)
			}
		}
		s.web.tokens[webHash(tok)] = exp
		s.web.mu.Unlock()
		return api.WebLoginResp{URL: s.URL() + "/#login=" + tok, Expires: exp.UnixMilli()}, nil
	})
}

// cookieName is per port: browsers share cookies across the ports of a host.
func (s *APIServer) cookieName() string {
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	return "parley_session_" + port
}

// sessionOK says whether r carries a live session cookie, and for a
// request that may change something, this server's Origin (admit has
// checked an Origin that is present).
func (s *APIServer) sessionOK(r *http.Request) bool {
	c, err := r.Cookie(s.cookieName())
	if err != nil || c.Value == "" {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get("Origin") == "" {
		return false
	}
	s.web.mu.Lock()
	defer s.web.mu.Unlock()
	exp, ok := s.web.sessions[webHash(c.Value)]
	return ok && time.Now().Before(exp)
}

// redeem consumes a login token: true once, while it is valid.
func (s *APIServer) redeem(tok string) bool {
	k := webHash(tok)
	s.web.mu.Lock()
	defer s.web.mu.Unlock()
	exp, ok := s.web.tokens[k]
	delete(s.web.tokens, k)
	return ok && time.Now().Before(exp)
}

func setWebHeaders(h http.Header) {
	h.Set("Content-Security-Policy", webCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// serveWeb answers the web app's routes; false: not one of them.
func (s *APIServer) serveWeb(w http.ResponseWriter, r *http.Request) bool {
	setWebHeaders(w.Header())
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/v1/") || p == api.OpenAPIPath || p == api.MetricsPath:
		return false
	case strings.HasPrefix(p, "/web/"):
		if err := s.checkHost(r); err != nil {
			writeError(w, err)
			return true
		}
		if p == "/web/session" {
			s.webSession(w, r)
			return true
		}
		if err := s.admit(r); err != nil {
			writeError(w, err)
			return true
		}
		switch {
		case p == "/web/events" && r.Method == http.MethodGet:
			s.webEvents(w, r)
		case p == "/web/file" && r.Method == http.MethodGet:
			s.webFile(w, r, false)
		case p == "/web/blob" && r.Method == http.MethodGet:
			s.webFile(w, r, true)
		case p == "/web/upload" && r.Method == http.MethodPost:
			s.webUpload(w, r)
		case p == "/web/device-link" && r.Method == http.MethodPost:
			s.webDeviceLink(w, r)
		default:
			writeError(w, errorf(api.KindNotFound, "no such web route %s %s", r.Method, p))
		}
		return true
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if err := s.checkHost(r); err != nil {
		writeError(w, err)
		return true
	}
	name := strings.TrimPrefix(path.Clean(p), "/")
	if name == "" {
		name = "index.html"
	}
	b, err := fs.ReadFile(webFiles, "web/"+name)
	if err != nil {
		writeError(w, errorf(api.KindNotFound, "no such page %s", p))
		return true
	}
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".svg":
		ct = "image/svg+xml"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
	return true
}

// webSession trades a login token for a session cookie.
func (s *APIServer) webSession(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Origin") == "" {
		writeError(w, errorf(api.KindPermission, "log in from the web app"))
		return
	}
	var req struct {
		Token string `json:"token"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err := decodeStrict(body, &req); err != nil || req.Token == "" || !s.redeem(req.Token) {
		writeError(w, errorf(api.KindPermission, "this login link is wrong, used or expired: run 'parley open' for a new one"))
		return
	}
	sess := webSecret()
	exp := time.Now().Add(webSessionTTL)
	s.addSession(webHash(sess), exp)
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: sess, Path: "/", Expires: exp,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{}\n")
}

// webEvents streams the watch stream (all rooms) as server-sent events,
// one JSON object per event; the first is {"kind":"ready"}. A client that
// reconnects re-reads what it shows after ready (docs/web.md).
func (s *APIServer) webEvents(w http.ResponseWriter, r *http.Request) {
	h, ok := s.streams[api.EpWatch.Method]
	if !ok {
		writeError(w, errorf(api.KindUnavailable, "watch is not served"))
		return
	}
	flusher, _ := w.(http.Flusher)
	started := false
	emit := func(v any) error {
		if !started {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if v != nil {
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return err
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	if err := h(r.Context(), []byte("{}"), emit); err != nil && !started {
		writeError(w, err)
	}
}

// webTemp makes a private folder for one file on its way through.
func (s *APIServer) webTemp() (string, error) {
	s.web.mu.Lock()
	dir := s.web.dir
	s.web.mu.Unlock()
	if dir == "" {
		dir = os.TempDir()
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", errorf(api.KindInternal, "web folder: %v", err)
	}
	d, err := os.MkdirTemp(dir, "web-")
	if err != nil {
		return "", errorf(api.KindInternal, "web folder: %v", err)
	}
	return d, nil
}

// call runs a bound API method with req and decodes its answer into resp.
func (s *APIServer) call(r *http.Request, method string, req, resp any) error {
	h, ok := s.handlers[method]
	if !ok {
		return errorf(api.KindUnavailable, "%s is not served", method)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	out, err := h(r.Context(), body)
	if err != nil {
		return err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, resp)
}

// inlineTypes are the content types a browser may show in the app itself;
// everything else is sent as an attachment.
var inlineTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
	"audio/wave": true, "audio/mpeg": true, "application/ogg": true, "video/mp4": true, "video/webm": true, "audio/webm": true}

// webFile decrypts a media message's file (blob: a blob by CID and key,
// for thumbnails) into a private temporary file and serves it.
func (s *APIServer) webFile(w http.ResponseWriter, r *http.Request, blob bool) {
	q := r.URL.Query()
	dir, err := s.webTemp()
	if err != nil {
		writeError(w, err)
		return
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "file")
	if blob {
		var resp api.MediaGetResp
		err = s.call(r, api.EpMediaGet.Method, api.MediaGetReq{CID: q.Get("cid"), Key: q.Get("key"), Out: out}, &resp)
	} else {
		var resp api.MediaSaveResp
		err = s.call(r, api.EpMediaSave.Method, api.MediaSaveReq{Room: q.Get("room"), Event: q.Get("event"), Out: out}, &resp)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	f, err := os.Open(out)
	if err != nil {
		writeError(w, errorf(api.KindInternal, "open file: %v", err))
		return
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	ct := http.DetectContentType(head[:n])
	if base, _, _ := strings.Cut(ct, ";"); inlineTypes[base] && q.Get("download") == "" {
		w.Header().Set("Content-Disposition", "inline")
	} else {
		if !inlineTypes[base] {
			ct = "application/octet-stream"
		}
		name := saveName(q.Get("name"))
		if name == "" {
			name = "file"
		}
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	http.ServeContent(w, r, "", time.Time{}, f)
}

// webUpload stores the request body as a file and sends it to the room,
// as send-file does.
func (s *APIServer) webUpload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := saveName(q.Get("name"))
	if name == "" {
		name = "file"
	}
	dir, err := s.webTemp()
	if err != nil {
		writeError(w, err)
		return
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		writeError(w, errorf(api.KindInternal, "upload: %v", err))
		return
	}
	_, err = io.Copy(f, http.MaxBytesReader(w, r.Body, webMaxUpload))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		writeError(w, errorf(api.KindInvalid, "upload: %v", err))
		return
	}
	var resp api.SendFileResp
	req := api.SendFileReq{Room: q.Get("room"), Path: p, Caption: q.Get("caption"), Voice: q.Get("voice") != ""}
	if err := voiceHints(q, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := s.call(r, api.EpSendFile.Method, req, &resp); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

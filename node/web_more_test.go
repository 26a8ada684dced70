package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
)

// TestWebSessionsPersist: a session outlives the server that made it (a
// daemon restart) through the sessions file, which holds no cookie value,
// has mode 0600 and drops expired sessions.
func TestWebSessionsPersist(t *testing.T) {
	const bearer = "0123456789abcdef"
	file := filepath.Join(t.TempDir(), webSessionsFile)
	s := startTestAPI(t, bearer)
	s.SetWebSessions(file)
	tok := mintToken(t, s, bearer)
	w := webReq(s, "POST", "/web/session", s.URL(), `{"token":"`+tok+`"}`, nil, "")
	if w.Code != 200 || len(w.Result().Cookies()) != 1 {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	c := w.Result().Cookies()[0]
	if c.Expires.Before(time.Now().Add(webSessionTTL - time.Hour)) {
		t.Errorf("the cookie expires %v: want it to last as the session does", c.Expires)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("sessions file mode %v", st.Mode().Perm())
	}
	if strings.Contains(string(b), c.Value) {
		t.Fatal("the sessions file holds the cookie's value")
	}

	// An expired session and junk in the file are dropped on load.
	var d webSessionsDisk
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	d.Sessions[webHash("old")] = time.Now().Add(-time.Minute).UnixMilli()
	d.Sessions["short"] = time.Now().Add(time.Hour).UnixMilli()
	b, _ = json.Marshal(d)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}

	s2 := startTestAPI(t, bearer)
	s2.SetWebSessions(file)
	method := "/v1/" + api.EpDisconnect.Method
	moved := &http.Cookie{Name: s2.cookieName(), Value: c.Value}
	if w := webReq(s2, "POST", method, s2.URL(), `{"peer_id":"x"}`, moved, ""); w.Code != 200 {
		t.Fatalf("the session after a restart: %d %s", w.Code, w.Body)
	}
	for _, k := range []string{webHash("old"), "short"} {
		if _, ok := s2.web.sessions[k]; ok {
			t.Errorf("session %q loaded", k)
		}
	}
	bad := &http.Cookie{Name: s2.cookieName(), Value: "old"}
	if w := webReq(s2, "POST", method, s2.URL(), `{"peer_id":"x"}`, bad, ""); w.Code != 403 {
		t.Fatalf("an expired session after a restart: %d", w.Code)
	}

	// A file that is not JSON: no session, no crash.
	if err := os.WriteFile(file, []byte("{nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	s3 := startTestAPI(t, bearer)
	s3.SetWebSessions(file)
	if len(s3.web.sessions) != 0 {
		t.Fatalf("sessions from junk: %v", s3.web.sessions)
	}
}

// TestQRSVG: the SVG draws exactly the modules of the text's QR code.
func TestQRSVG(t *testing.T) {
	text := "parley-link-" + strings.Repeat("abcdefgh234567", 30)
	svg, err := qrSVG(text)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := qrcode.New(text, qrcode.Medium)
	want := q.Bitmap()
	n := len(want)
	if !strings.Contains(svg, `viewBox="0 0 `+strconv.Itoa(n)+" "+strconv.Itoa(n)+`"`) {
		t.Fatalf("viewBox of %d modules missing: %.100s", n, svg)
	}
	got := make([][]bool, n)
	for i := range got {
		got[i] = make([]bool, n)
	}
	for _, m := range regexp.MustCompile(`M(\d+) (\d+)h(\d+)v1h-(\d+)z`).FindAllStringSubmatch(svg, -1) {
		x, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[2])
		w, _ := strconv.Atoi(m[3])
		if m[3] != m[4] {
			t.Fatalf("run %q does not close", m[0])
		}
		for i := x; i < x+w; i++ {
			if got[y][i] {
				t.Fatalf("module (%d,%d) drawn twice", i, y)
			}
			got[y][i] = true
		}
	}
	for y := range want {
		for x := range want[y] {
			if got[y][x] != want[y][x] {
				t.Fatalf("module (%d,%d): drawn %v, want %v", x, y, got[y][x], want[y][x])
			}
		}
	}
	if _, err := qrSVG(strings.Repeat("x", 4000)); err == nil {
		t.Fatal("a text too long for a QR code made one")
	}
}

// FuzzVoiceHints: any query gives hints within bounds or an error.
func FuzzVoiceHints(f *testing.F) {
	f.Add("AAECAwQ", "1500")
	f.Add("", "")
	f.Add(strings.Repeat("A", 200), "-1")
	f.Add("!!", "99999999999")
	f.Add("AAECAwQ=", "0")
	f.Fuzz(func(t *testing.T, wave, dur string) {
		q := url.Values{}
		q.Set("waveform", wave)
		q.Set("duration_ms", dur)
		var req api.SendFileReq
		if err := voiceHints(q, &req); err != nil {
			return
		}
		if len(req.Waveform) > media.WaveformBuckets {
			t.Fatalf("waveform of %d buckets accepted", len(req.Waveform))
		}
	})
}

// TestWebLoginConcurrent: many logins at once and in a row, through the
// real HTTP server, with the sessions file in use: every token opens one
// session, at once usable on the API (the page's next request), and every
// session is still there for a server started again on the same file.
func TestWebLoginConcurrent(t *testing.T) {
	const bearer = "0123456789abcdef"
	file := filepath.Join(t.TempDir(), webSessionsFile)
	s := startTestAPI(t, bearer)
	s.SetWebSessions(file)
	post := func(path string, body string, c *http.Cookie) (*http.Response, error) {
		req, err := http.NewRequest("POST", s.URL()+path, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Origin", s.URL())
		if c != nil {
			req.AddCookie(c)
		}
		r, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
		return r, err
	}
	login := func() (*http.Cookie, error) {
		tok := mintToken(t, s, bearer)
		r, err := post("/web/session", `{"token":"`+tok+`"}`, nil)
		if err != nil {
			return nil, err
		}
		if r.StatusCode != 200 || len(r.Cookies()) != 1 {
			return nil, fmt.Errorf("login: status %d, cookies %v", r.StatusCode, r.Cookies())
		}
		c := r.Cookies()[0]
		if r, err = post("/v1/"+api.EpDisconnect.Method, `{"peer_id":"x"}`, c); err != nil {
			return nil, err
		}
		if r.StatusCode != 200 {
			return nil, fmt.Errorf("the new session's first call: status %d", r.StatusCode)
		}
		return c, nil
	}
	const workers, each = 16, 8
	var (
		mu      sync.Mutex
		cookies []*http.Cookie
		wg      sync.WaitGroup
	)
	errs := make(chan error, workers*each)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				c, err := login()
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				cookies = append(cookies, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	// The same server, and one started again on the file, take every cookie.
	s2 := startTestAPI(t, bearer)
	s2.SetWebSessions(file)
	for i, c := range cookies {
		for _, srv := range []*APIServer{s, s2} {
			c2 := &http.Cookie{Name: srv.cookieName(), Value: c.Value}
			if w := webReq(srv, "POST", "/v1/"+api.EpDisconnect.Method, srv.URL(), `{"peer_id":"x"}`, c2, ""); w.Code != 200 {
				t.Fatalf("session %d of %d on %s: status %d", i, len(cookies), srv.URL(), w.Code)
			}
		}
	}
}

package node

// More of the web app's server side (docs/web.md): sessions kept across
// restarts, the device-link QR code, and the voice-message hints of an
// upload. Like web.go, this file holds no room logic.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
)

const (
	// webSessionsFile (in the home) keeps the hashes of live web sessions,
	// so that a browser stays logged in when the daemon restarts.
	webSessionsFile = "web-sessions"
	// webSessionTTL is how long a web session lives.
	webSessionTTL = 30 * 24 * time.Hour
)

// webSessionsDisk is the form of webSessionsFile: session hash -> expiry
// (Unix ms). Only hashes are kept: the file cannot make a cookie.
type webSessionsDisk struct {
	Sessions map[string]int64 `json:"sessions"`
}

// SetWebSessions names the file where the web sessions are kept, and
// loads the live ones from it. A missing or unreadable file means none.
func (s *APIServer) SetWebSessions(file string) {
	s.web.mu.Lock()
	defer s.web.mu.Unlock()
	s.web.file = file
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	var d webSessionsDisk
	if json.Unmarshal(b, &d) != nil {
		return
	}
	now := time.Now()
	for k, ms := range d.Sessions {
		if exp := time.UnixMilli(ms); now.Before(exp) && len(k) == 64 {
			if s.web.sessions == nil {
				s.web.sessions = map[string]time.Time{}
			}
			s.web.sessions[k] = exp
		}
	}
}

// addSession records a session and writes the live ones to the file
// (mode 0600, replaced atomically).
func (s *APIServer) addSession(hash string, exp time.Time) {
	s.web.mu.Lock()
	defer s.web.mu.Unlock()
	if s.web.sessions == nil {
		s.web.sessions = map[string]time.Time{}
	}
	s.web.sessions[hash] = exp
	if s.web.file == "" {
		return
	}
	now := time.Now()
	d := webSessionsDisk{Sessions: map[string]int64{}}
	for k, e := range s.web.sessions {
		if now.After(e) {
			delete(s.web.sessions, k)
			continue
		}
		d.Sessions[k] = e.UnixMilli()
	}
	b, _ := json.Marshal(d)
	tmp := s.web.file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		os.Rename(tmp, s.web.file)
	}
}

// webDeviceLink mints a device-link code (device/link) and answers it with
// its QR code, an SVG image as a data: URL:
// {"code","expires_ms","qr"}.
func (s *APIServer) webDeviceLink(w http.ResponseWriter, r *http.Request) {
	var resp api.DeviceLinkResp
	if err := s.call(r, api.EpDeviceLink.Method, api.Empty{}, &resp); err != nil {
		writeError(w, err)
		return
	}
	svg, err := qrSVG(resp.Code)
	if err != nil {
		writeError(w, errorf(api.KindInternal, "QR code: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(struct {
		api.DeviceLinkResp
		QR string `json:"qr"`
	}{resp, "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(svg))})
}

// qrSVG draws text as a QR code (error correction level M, a quiet zone
// of four modules), one path of unit squares, dark on white.
func qrSVG(text string) (string, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", err
	}
	bits := q.Bitmap() // includes the quiet zone
	n := len(bits)
	var p strings.Builder
	for y, row := range bits {
		for x := 0; x < len(row); x++ {
			if !row[x] {
				continue
			}
			run := 1
			for x+run < len(row) && row[x+run] {
				run++
			}
			fmt.Fprintf(&p, "M%d %dh%dv1h-%dz", x, y, run, run)
			x += run - 1
		}
	}
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`+
		`<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="%s"/></svg>`, n, n, n, n, p.String()), nil
}

// voiceHints reads the waveform (base64url, at most media.WaveformBuckets
// bytes) and duration_ms an upload may carry for a voice message the
// browser recorded and measured.
func voiceHints(q url.Values, req *api.SendFileReq) error {
	if v := q.Get("waveform"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
		if err != nil || len(b) > media.WaveformBuckets {
			return errorf(api.KindInvalid, "waveform: want at most %d bytes in unpadded base64url", media.WaveformBuckets)
		}
		req.Waveform = b
	}
	if v := q.Get("duration_ms"); v != "" {
		ms, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return errorf(api.KindInvalid, "duration_ms %q is not a number of milliseconds", v)
		}
		req.DurationMS = uint32(ms)
	}
	return nil
}

package node

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// startTestAPI serves an APIServer with one method until the test ends:
// disconnect, bound to a handler that echoes the peer ID.
func startTestAPI(t testing.TB, token string) *APIServer {
	t.Helper()
	s, err := NewAPIServer("127.0.0.1:0", token, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	Handle(s, api.EpDisconnect, func(_ context.Context, req api.PeerReq) (api.PeerResp, error) {
		return api.PeerResp(req), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s
}

func apiPost(t *testing.T, s *APIServer, auth []string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/v1/"+api.EpDisconnect.Method, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAPIAuthorizationStrict: only "Authorization: Bearer <token>" opens
// the API (issue 17, item 8).
func TestAPIAuthorizationStrict(t *testing.T) {
	const token = "0123456789abcdef"
	s := startTestAPI(t, token)
	for _, tc := range []struct {
		name string
		auth []string
		want int
	}{
		{"bearer", []string{"Bearer " + token}, http.StatusOK},
		{"bare token", []string{token}, http.StatusForbidden},
		{"lower-case scheme", []string{"bearer " + token}, http.StatusForbidden},
		{"basic scheme", []string{"Basic " + token}, http.StatusForbidden},
		{"two spaces", []string{"Bearer  " + token}, http.StatusForbidden},
		{"trailing junk", []string{"Bearer " + token + " x"}, http.StatusForbidden},
		{"no header", nil, http.StatusForbidden},
		{"empty bearer", []string{"Bearer "}, http.StatusForbidden},
		{"two headers", []string{"Bearer " + token, "Bearer " + token}, http.StatusForbidden},
	} {
		if code, body := apiPost(t, s, tc.auth, `{"peer_id":"hi"}`); code != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, code, tc.want, body)
		}
	}
}

// TestAPIBodyStrict: a request body is exactly one JSON object of known
// fields, with nothing but white space after it (issue 17, item 8).
func TestAPIBodyStrict(t *testing.T) {
	const token = "0123456789abcdef"
	s := startTestAPI(t, token)
	auth := []string{"Bearer " + token}
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"peer_id":"hi"}`, http.StatusOK},
		{"{\"peer_id\":\"hi\"}\n \t", http.StatusOK},
		{``, http.StatusOK}, // no body: the zero request
		{`{}garbage`, http.StatusBadRequest},
		{`{} {}`, http.StatusBadRequest},
		{`{"peer_id":"hi"}]`, http.StatusBadRequest},
		{`{"peer_id":"hi"}{"peer_id":"x"}`, http.StatusBadRequest},
		{`{"peer_id":"hi","other":1}`, http.StatusBadRequest},
		{`{"peer_id":`, http.StatusBadRequest},
		{`[]`, http.StatusBadRequest},
	} {
		if code, body := apiPost(t, s, auth, tc.body); code != tc.want {
			t.Errorf("body %q: status %d, want %d (%s)", tc.body, code, tc.want, body)
		}
	}
}

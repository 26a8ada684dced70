package node

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

type apiEchoReq struct {
	Text string `json:"text"`
}

type apiEchoResp struct {
	Text string `json:"text"`
}

// startTestAPI serves an APIServer with one echo method until the test ends.
func startTestAPI(t *testing.T, token string) *APIServer {
	t.Helper()
	s, err := NewAPIServer("127.0.0.1:0", token, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	Handle(s, "echo", func(_ context.Context, req apiEchoReq) (apiEchoResp, error) {
		return apiEchoResp(req), nil
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
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/v1/echo", strings.NewReader(body))
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
		if code, body := apiPost(t, s, tc.auth, `{"text":"hi"}`); code != tc.want {
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
		{`{"text":"hi"}`, http.StatusOK},
		{"{\"text\":\"hi\"}\n \t", http.StatusOK},
		{``, http.StatusOK}, // no body: the zero request
		{`{}garbage`, http.StatusBadRequest},
		{`{} {}`, http.StatusBadRequest},
		{`{"text":"hi"}]`, http.StatusBadRequest},
		{`{"text":"hi"}{"text":"x"}`, http.StatusBadRequest},
		{`{"text":"hi","other":1}`, http.StatusBadRequest},
		{`{"text":`, http.StatusBadRequest},
		{`[]`, http.StatusBadRequest},
	} {
		if code, body := apiPost(t, s, auth, tc.body); code != tc.want {
			t.Errorf("body %q: status %d, want %d (%s)", tc.body, code, tc.want, body)
		}
	}
}

package node

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/rooms"
)

// maxRequest bounds a request body; events are at most 64 KiB, so this leaves
// room for a clear "too large" answer from the handler for anything between.
const maxRequest = 1 << 20

type handlerFunc func(ctx context.Context, body []byte) (any, error)
type streamFunc func(ctx context.Context, body []byte, emit func(any) error) error

// APIServer is the local HTTP API: loopback only, bearer token, Host and
// Origin checks. Methods are registered with Handle and HandleStream before
// Serve.
type APIServer struct {
	token    string
	ln       net.Listener
	handlers map[string]handlerFunc
	streams  map[string]streamFunc
	log      *slog.Logger
	metrics  *Metrics // optional: serves api.MetricsPath and observes latency (metrics.go)
	web      webAuth  // the web app's logins and sessions (web.go)
}

// SetMetrics serves m at api.MetricsPath (behind the token) and records the
// latency of every request/response method in it. Call before Serve.
func (s *APIServer) SetMetrics(m *Metrics) { s.metrics = m }

// NewAPIServer listens on addr, which must be a loopback address.
func NewAPIServer(addr, token string, log *slog.Logger) (*APIServer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, errorf(api.KindInvalid, "api address %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, errorf(api.KindInvalid, "api address %q is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen api: %w", err)
	}
	s := &APIServer{token: token, ln: ln, handlers: map[string]handlerFunc{}, streams: map[string]streamFunc{}, log: log}
	s.bindWeb()
	return s, nil
}

// URL is the base URL clients use.
func (s *APIServer) URL() string { return "http://" + s.ln.Addr().String() }

// Handle binds endpoint ep to fn; binding a method twice panics.
func Handle[Req, Resp any](s *APIServer, ep api.Endpoint[Req, Resp], fn func(context.Context, Req) (Resp, error)) {
	s.claim(ep.Method)
	s.handlers[ep.Method] = func(ctx context.Context, body []byte) (any, error) {
		var req Req
		if err := decodeStrict(body, &req); err != nil {
			return nil, err
		}
		return fn(ctx, req)
	}
}

// HandleStream binds streaming endpoint ep to fn, which calls emit with
// each item (emit(nil) opens the stream); binding a method twice panics.
func HandleStream[Req, Item any](s *APIServer, ep api.StreamEndpoint[Req, Item], fn func(ctx context.Context, req Req, emit func(*Item) error) error) {
	s.claim(ep.Method)
	s.streams[ep.Method] = func(ctx context.Context, body []byte, emit func(any) error) error {
		var req Req
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
		return fn(ctx, req, func(it *Item) error {
			if it == nil {
				return emit(nil)
			}
			return emit(it)
		})
	}
}

func (s *APIServer) claim(method string) {
	_, h := s.handlers[method]
	_, st := s.streams[method]
	if h || st {
		panic(fmt.Sprintf("node: API method %q bound twice", method))
	}
	if _, ok := api.Lookup(method); !ok {
		panic(fmt.Sprintf("node: API method %q is not in the endpoint table", method))
	}
}

// Unbound lists the endpoints of the table that no handler answers.
func (s *APIServer) Unbound() []string {
	var out []string
	for _, d := range api.Endpoints() {
		_, h := s.handlers[d.Method]
		_, st := s.streams[d.Method]
		if !h && !st {
			out = append(out, d.Method)
		}
	}
	return out
}

func decodeStrict(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return errorf(api.KindInvalid, "bad request: %v", err)
	}
	// Exactly one JSON value: after it only white space may follow.
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errorf(api.KindInvalid, "bad request: data after the JSON value")
	}
	return nil
}

// Serve answers requests until ctx is done.
func (s *APIServer) Serve(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	err := srv.Serve(s.ln)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *APIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveWeb(w, r) {
		return
	}
	if err := s.admit(r); err != nil {
		writeError(w, err)
		return
	}
	if r.URL.Path == api.OpenAPIPath && r.Method == http.MethodGet {
		doc, err := api.OpenAPI()
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
		return
	}
	if r.URL.Path == api.MetricsPath && r.Method == http.MethodGet && s.metrics != nil {
		s.metrics.Handler().ServeHTTP(w, r)
		return
	}
	method, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok || r.Method != http.MethodPost {
		writeError(w, errorf(api.KindNotFound, "no such API method %s %s", r.Method, r.URL.Path))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest+1))
	if err != nil {
		writeError(w, errorf(api.KindInvalid, "read request: %v", err))
		return
	}
	if len(body) > maxRequest {
		writeError(w, errorf(api.KindInvalid, "request larger than %d bytes", maxRequest))
		return
	}
	if h, ok := s.handlers[method]; ok {
		if s.metrics != nil {
			defer func(start time.Time) { s.metrics.ObserveAPI(method, time.Since(start)) }(time.Now())
		}
		resp, err := h(r.Context(), body)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
		return
	}
	if h, ok := s.streams[method]; ok {
		s.serveStream(w, r, h, body)
		return
	}
	writeError(w, errorf(api.KindNotFound, "no such API method %q", method))
}

func (s *APIServer) serveStream(w http.ResponseWriter, r *http.Request, h streamFunc, body []byte) {
	flusher, _ := w.(http.Flusher)
	bw := bufio.NewWriter(w)
	started := false
	// emit writes one JSON line; emit(nil) only opens the stream (status and
	// headers), which a handler does once it is ready to deliver, so a
	// client that sees the stream open misses nothing sent afterwards.
	emit := func(v any) error {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if v != nil {
			if err := json.NewEncoder(bw).Encode(v); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	err := h(r.Context(), body, emit)
	switch {
	case err != nil && !started:
		writeError(w, err)
	case err != nil && r.Context().Err() == nil:
		emit(map[string]string{"kind": "error", "error": err.Error()})
	}
}

// admit checks the token (or the web app's session cookie, web.go) and
// that Host and Origin name this loopback server, which stops DNS-rebinding
// and cross-site requests from browsers.
func (s *APIServer) admit(r *http.Request) error {
	if err := s.checkHost(r); err != nil {
		return err
	}
	if len(r.Header.Values("Authorization")) == 0 && s.sessionOK(r) {
		return nil
	}
	// Exactly "Authorization: Bearer <token>", one header, nothing else.
	auth := r.Header.Values("Authorization")
	got, bearer := "", false
	if len(auth) == 1 {
		got, bearer = strings.CutPrefix(auth[0], "Bearer ")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) != 1 || !bearer {
		return errorf(api.KindPermission, "missing or wrong API token")
	}
	return nil
}

// checkHost checks that Host and any Origin name this loopback server.
func (s *APIServer) checkHost(r *http.Request) error {
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	okHost := func(h string) bool {
		hh, p, err := net.SplitHostPort(h)
		if err != nil || p != port {
			return false
		}
		ip := net.ParseIP(hh)
		return hh == "localhost" || (ip != nil && ip.IsLoopback())
	}
	if !okHost(r.Host) {
		return errorf(api.KindPermission, "host %q not allowed", r.Host)
	}
	if o := r.Header.Get("Origin"); o != "" {
		h, ok := strings.CutPrefix(o, "http://")
		if !ok || !okHost(h) {
			return errorf(api.KindPermission, "origin %q not allowed", o)
		}
	}
	return nil
}

func writeError(w http.ResponseWriter, err error) {
	k := KindOf(err)
	msg := err.Error()
	var rf *rooms.Refusal
	if errors.As(err, &rf) {
		msg = "not permitted: " + rf.Reason
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(api.StatusOf(k))
	json.NewEncoder(w).Encode(api.ErrorResp{Error: msg, Kind: k, Code: CodeOf(err)})
}

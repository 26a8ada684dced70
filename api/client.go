package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
)

// InfoFile is the name of the file in a node's home that tells clients where
// its API is: {"url": "http://127.0.0.1:PORT", "token": "..."}.
const InfoFile = "api"

// Info is the content of the api file.
type Info struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// DefaultHome is $PARLEY_HOME, else $XDG_DATA_HOME/parley, else ~/.local/share/parley.
func DefaultHome() string {
	if h := os.Getenv("PARLEY_HOME"); h != "" {
		return h
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "parley")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".", ".parley")
	}
	return filepath.Join(home, ".local", "share", "parley")
}

// Client talks to a running daemon's local API.
type Client struct {
	info Info
	http *http.Client
}

// NewClient finds the daemon of home through its api file.
func NewClient(home string) (*Client, error) {
	b, err := os.ReadFile(filepath.Join(home, InfoFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w for %s", ErrNoDaemon, home)
	}
	if err != nil {
		return nil, fmt.Errorf("read api file: %w", err)
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil || info.URL == "" {
		return nil, fmt.Errorf("api file %s is damaged; restart the daemon", filepath.Join(home, InfoFile))
	}
	return &Client{info: info, http: &http.Client{}}, nil
}

// Raw sends body to method and returns the answer undecoded. Programs use
// the typed Endpoint.Call; Raw is for tools and tests that must send what
// no endpoint's request type allows (a malformed request).
func (c *Client) Raw(ctx context.Context, method string, body any) (json.RawMessage, error) {
	hr, err := c.do(ctx, method, body)
	if err != nil {
		return nil, err
	}
	defer hr.Body.Close()
	b, err := io.ReadAll(hr.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer of %s: %w", method, err)
	}
	return b, nil
}

// stream invokes a streaming method and calls fn with each line until the
// stream ends, ctx is done or fn returns an error.
func (c *Client) stream(ctx context.Context, method string, req any, fn func(json.RawMessage) error) error {
	hr, err := c.do(ctx, method, req)
	if err != nil {
		return err
	}
	defer hr.Body.Close()
	sc := bufio.NewScanner(hr.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if err := fn(json.RawMessage(bytes.Clone(sc.Bytes()))); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

func (c *Client) do(ctx context.Context, method string, req any) (*http.Response, error) {
	if req == nil {
		req = Empty{}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.info.URL+"/v1/"+method, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Authorization", "Bearer "+c.info.Token)
	hreq.Header.Set("Content-Type", "application/json")
	hr, err := c.http.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("%w (is the daemon still running? %v)", ErrNoDaemon, err)
	}
	if hr.StatusCode != http.StatusOK {
		defer hr.Body.Close()
		var ae ErrorResp
		b, _ := io.ReadAll(io.LimitReader(hr.Body, 64<<10))
		if json.Unmarshal(b, &ae) != nil || ae.Error == "" {
			return nil, fmt.Errorf("daemon answered %s", hr.Status)
		}
		return nil, &Error{Kind: ae.Kind, Code: ae.Code, Msg: ae.Error}
	}
	return hr, nil
}

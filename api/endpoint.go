package api

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
)

// Endpoint is one request/response method of the local API, POST
// /v1/<Method>, with its request and response types. Each is declared once,
// in the table of the types files, and used by the server (Handle) and
// the client (Call), so a method cannot be bound twice or paired with the
// wrong types. Endpoints hold only wire types (no libp2p or badger types).
type Endpoint[Req, Resp any] struct {
	Method  string
	Summary string
}

// StreamEndpoint is a streaming method: the answer is one JSON Item per
// line (application/x-ndjson) until the client stops reading; an error
// after the stream opened arrives as a line {"kind": "error", "error": ...}.
type StreamEndpoint[Req, Item any] struct {
	Method  string
	Summary string
}

// EndpointDesc describes one endpoint of the table for documents and tests.
type EndpointDesc struct {
	Method  string
	Summary string
	Req     reflect.Type
	Resp    reflect.Type // the type of each line for a stream
	Stream  bool
}

// endpointTable holds every declared endpoint by method.
var endpointTable = map[string]EndpointDesc{}

func declare(d EndpointDesc) {
	if _, dup := endpointTable[d.Method]; dup {
		panic(fmt.Sprintf("api: API method %q declared twice", d.Method))
	}
	endpointTable[d.Method] = d
}

// endpoint declares a request/response method; declaring a method twice panics.
func endpoint[Req, Resp any](method, summary string) Endpoint[Req, Resp] {
	declare(EndpointDesc{Method: method, Summary: summary, Req: reflect.TypeFor[Req](), Resp: reflect.TypeFor[Resp]()})
	return Endpoint[Req, Resp]{Method: method, Summary: summary}
}

// streamEndpoint declares a streaming method; declaring a method twice panics.
func streamEndpoint[Req, Item any](method, summary string) StreamEndpoint[Req, Item] {
	declare(EndpointDesc{Method: method, Summary: summary, Req: reflect.TypeFor[Req](), Resp: reflect.TypeFor[Item](), Stream: true})
	return StreamEndpoint[Req, Item]{Method: method, Summary: summary}
}

// Lookup finds the endpoint of method in the table.
func Lookup(method string) (EndpointDesc, bool) {
	d, ok := endpointTable[method]
	return d, ok
}

// Describe is the endpoint of method, the zero EndpointDesc if the table
// has none.
func Describe(method string) EndpointDesc { return endpointTable[method] }

// Endpoints lists the table, sorted by method.
func Endpoints() []EndpointDesc {
	out := make([]EndpointDesc, 0, len(endpointTable))
	for _, d := range endpointTable {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b EndpointDesc) int {
		if a.Method < b.Method {
			return -1
		}
		if a.Method > b.Method {
			return 1
		}
		return 0
	})
	return out
}

// Call invokes the endpoint on the daemon behind c.
func (e Endpoint[Req, Resp]) Call(ctx context.Context, c *Client, req Req) (Resp, error) {
	var resp Resp
	raw, err := c.Raw(ctx, e.Method, req)
	if err != nil {
		return resp, err
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return resp, fmt.Errorf("decode answer of %s: %w", e.Method, err)
	}
	return resp, nil
}

// CallRaw invokes the endpoint and returns the daemon's answer undecoded.
func (e Endpoint[Req, Resp]) CallRaw(ctx context.Context, c *Client, req Req) (json.RawMessage, error) {
	return c.Raw(ctx, e.Method, req)
}

// Stream invokes the streaming endpoint and calls fn with each line, decoded
// and as sent, until the stream ends, ctx is done or fn returns an error.
// A line that is not a JSON Item ends the stream with an error.
func (e StreamEndpoint[Req, Item]) Stream(ctx context.Context, c *Client, req Req, fn func(it Item, line json.RawMessage) error) error {
	return c.stream(ctx, e.Method, req, func(line json.RawMessage) error {
		var it Item
		if err := json.Unmarshal(line, &it); err != nil {
			return fmt.Errorf("the daemon sent a malformed %s line: %w", e.Method, err)
		}
		return fn(it, line)
	})
}

package node

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/parley-p2p/parley/api"
)

// oasSchema is the official JSON Schema of OpenAPI 3.1 documents
// (https://spec.openapis.org/oas/3.1/schema/2022-10-07), vendored.
const oasSchema = "testdata/oas31-schema.json"

// validateOpenAPI checks doc against the official OpenAPI 3.1 schema and
// compiles every Schema Object in it as a JSON Schema 2020-12 (the OpenAPI
// schema leaves Schema Objects to the dialect), resolving the document's own
// $refs. It returns the compiled component schemas by name.
func validateOpenAPI(t *testing.T, doc []byte) map[string]*jsonschema.Schema {
	t.Helper()
	f, err := os.Open(oasSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	meta, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("https://spec.openapis.org/oas/3.1/schema/2022-10-07", meta); err != nil {
		t.Fatal(err)
	}
	oas, err := c.Compile("https://spec.openapis.org/oas/3.1/schema/2022-10-07")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("document is not JSON: %v", err)
	}
	if err := oas.Validate(inst); err != nil {
		t.Fatalf("document is not valid OpenAPI 3.1: %v", err)
	}
	// The components as schemas: a $ref "#/components/schemas/X" inside
	// resolves against the document.
	const base = "file:///parley/openapi.json"
	c = jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(base, inst); err != nil {
		t.Fatal(err)
	}
	out := map[string]*jsonschema.Schema{}
	schemas := inst.(map[string]any)["components"].(map[string]any)["schemas"].(map[string]any)
	for name := range schemas {
		s, err := c.Compile(base + "#/components/schemas/" + name)
		if err != nil {
			t.Errorf("schema %s is not a valid JSON Schema 2020-12: %v", name, err)
			continue
		}
		out[name] = s
	}
	return out
}

// TestOpenAPIDocument checks that the API document validates and lists
// every endpoint of the table with its request, response and error
// schemas, and that the schemas accept what the handlers answer.
func TestOpenAPIDocument(t *testing.T) {
	doc, err := api.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	schemas := validateOpenAPI(t, doc)
	var d struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	eps := api.Endpoints()
	if len(eps) == 0 {
		t.Fatal("the endpoint table is empty")
	}
	for _, ep := range eps {
		op, ok := d.Paths["/v1/"+ep.Method]["post"]
		if !ok {
			t.Errorf("endpoint %s is not in the document", ep.Method)
			continue
		}
		if _, ok := op.RequestBody.Content["application/json"]; !ok {
			t.Errorf("endpoint %s has no JSON request schema", ep.Method)
		}
		for _, st := range []string{"200", "400", "403", "404", "500", "503"} {
			if _, ok := op.Responses[st]; !ok {
				t.Errorf("endpoint %s documents no %s answer", ep.Method, st)
			}
		}
	}
	if len(d.Paths) != len(eps)+2 {
		t.Errorf("document has %d paths, want %d endpoints, the document itself and /metrics", len(d.Paths), len(eps))
	}

	// The schemas say what the wire carries: sample answers validate, and
	// a wrong one does not.
	valid := func(name string, v any) error {
		b, _ := json.Marshal(v)
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		s, ok := schemas[name]
		if !ok {
			t.Fatalf("no valid schema %s in the document", name)
		}
		return s.Validate(inst)
	}
	sk := "u1"
	on := true
	for name, v := range map[string]any{
		"HistoryResp":  api.HistoryResp{Events: []api.TimelineEvent{{ID: "e", Sender: "s", Type: "member", StateKey: &sk, Reactions: map[string][]string{"+1": {"u"}}, Media: &api.MessageMedia{CID: "c", Waveform: []byte{1, 2}}}}},
		"WatchItem":    api.WatchItem{Kind: "typing", Room: "r", Signal: &api.Signal{User: "u", Typing: &on}},
		"RoomInfoResp": api.RoomInfoResp{Room: "r"},
		"Error":        api.ErrorResp{Error: "unknown room r", Kind: api.KindNotFound, Code: api.CodeUnknownRoom},
		"SettingsReq":  api.SettingsReq{Typing: &on},
	} {
		if err := valid(name, v); err != nil {
			t.Errorf("%s %+v does not validate against its schema: %v", name, v, err)
		}
	}
	if err := valid("StreamError", map[string]any{"kind": "error", "error": "watch stream ended"}); err != nil {
		t.Errorf("a stream's error line does not validate: %v", err)
	}
	if valid("Error", map[string]any{"error": "x", "kind": "oops"}) == nil {
		t.Error("an error of an unknown kind validates")
	}
	if valid("SendReq", map[string]any{"room": "r", "text": 5}) == nil {
		t.Error("a send request with a number for text validates")
	}
}

// TestEndpointTable checks that every endpoint has exactly one handler in a
// running node, that binding one twice panics, and that the daemon serves
// the document behind its token, Host and Origin checks.
func TestEndpointTable(t *testing.T) {
	home := t.TempDir()
	n, err := Open(Config{Home: home, API: "127.0.0.1:0", Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	if un := n.api.Unbound(); len(un) > 0 {
		t.Errorf("endpoints without a handler: %v", un)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("binding send a second time did not panic")
			}
		}()
		Handle(n.api, api.EpSend, func(context.Context, api.SendReq) (api.EventResp, error) { return api.EventResp{}, nil })
	}()

	b, err := os.ReadFile(filepath.Join(home, api.InfoFile))
	if err != nil {
		t.Fatal(err)
	}
	var info api.Info
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	get := func(token, origin string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, info.URL+api.OpenAPIPath, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	for _, tc := range []struct{ token, origin string }{{"", ""}, {"wrong", ""}, {info.Token, "http://evil.example"}} {
		if st, body := get(tc.token, tc.origin); st != http.StatusForbidden || !strings.Contains(string(body), `"kind":"permission"`) {
			t.Errorf("document with token %q origin %q: %d %s, want 403", tc.token, tc.origin, st, body)
		}
	}
	st, body := get(info.Token, "")
	if st != http.StatusOK {
		t.Fatalf("document: %d %s", st, body)
	}
	want, _ := api.OpenAPI()
	if !bytes.Equal(body, want) {
		t.Error("the daemon serves a different document")
	}
	schemas := validateOpenAPI(t, body)

	// The typed client reaches the daemon, and an error carries its code.
	cl, err := api.NewClient(home)
	if err != nil {
		t.Fatal(err)
	}
	id, err := api.EpID.Call(ctx, cl, api.Empty{})
	if err != nil || id.User == "" {
		t.Fatalf("id: %+v %v", id, err)
	}
	// What the daemon answers validates against the document's schemas.
	room, err := api.EpRoomCreate.Call(ctx, cl, api.RoomCreateReq{Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.EpSend.Call(ctx, cl, api.SendReq{Room: room.Room, Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	for method, req := range map[string]any{
		api.EpID.Method: api.Empty{}, api.EpStatus.Method: api.Empty{}, api.EpPeers.Method: api.Empty{}, api.EpRoomList.Method: api.Empty{},
		api.EpRoomInfo.Method: api.RoomReq{Room: room.Room}, api.EpHistory.Method: api.HistoryReq{Room: room.Room},
		api.EpSettings.Method: api.SettingsReq{}, api.EpBlocked.Method: api.Empty{}, api.EpProfileGet.Method: api.UserReq{},
		api.EpDeviceList.Method: api.UserReq{}, api.EpInvites.Method: api.Empty{},
	} {
		raw, err := cl.Raw(ctx, method, req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		name := api.Describe(method).Resp.Name()
		if err := schemas[name].Validate(inst); err != nil {
			t.Errorf("the answer of %s does not validate against %s: %v\n%s", method, name, err, raw)
		}
	}
	_, err = api.EpHistory.Call(ctx, cl, api.HistoryReq{Room: "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"})
	if KindOf(err) != api.KindNotFound || CodeOf(err) != api.CodeUnknownRoom || strings.Contains(err.Error(), "parley ") {
		t.Errorf("history of an unknown room: %v (kind %q, code %q), want not_found, unknown_room and no CLI hint", err, KindOf(err), CodeOf(err))
	}
	if !slices.Contains(api.Codes, CodeOf(err)) {
		t.Errorf("code %q is not in Codes", CodeOf(err))
	}
}

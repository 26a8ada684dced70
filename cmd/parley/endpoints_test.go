package main

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestCLIEndpointsDocumented checks that every endpoint the CLI calls
// (each api.EpX named in this command's sources) is in the daemon's
// OpenAPI document. The endpoints' methods are read from their
// declarations in the api package.
func TestCLIEndpointsDocumented(t *testing.T) {
	fset := token.NewFileSet()
	// The table: EpX = endpoint[...]("method", ...) in package api.
	methods := map[string]string{}
	apiFiles, _ := filepath.Glob("../../api/types*.go")
	for _, f := range apiFiles {
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 {
				return true
			}
			if call, ok := vs.Values[0].(*ast.CallExpr); ok && len(call.Args) > 0 {
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					m, _ := strconv.Unquote(lit.Value)
					methods[vs.Names[0].Name] = m
				}
			}
			return true
		})
	}
	if len(methods) != len(api.Endpoints()) {
		t.Fatalf("found %d endpoint declarations in package api, the table has %d", len(methods), len(api.Endpoints()))
	}
	// The CLI's uses.
	used := map[string]bool{}
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			if se, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := se.X.(*ast.Ident); ok && id.Name == "api" && strings.HasPrefix(se.Sel.Name, "Ep") {
					used[se.Sel.Name] = true
				}
			}
			return true
		})
	}
	if len(used) < 40 {
		t.Fatalf("found only %d endpoints used by the CLI", len(used))
	}
	raw, err := api.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for name := range used {
		m, ok := methods[name]
		if !ok {
			t.Errorf("api.%s is used by the CLI but not declared in the endpoint table", name)
			continue
		}
		if _, ok := doc.Paths["/v1/"+m]; !ok {
			t.Errorf("api.%s (%s) is called by the CLI but missing from the OpenAPI document", name, m)
		}
	}
}

// TestHintsByCode checks that the CLI adds its advice to a daemon error by
// the error's code, and adds none to an error without one.
func TestHintsByCode(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"error":"unknown room r","kind":"not_found","code":"unknown_room"}`, "parley: unknown room r (join it first: parley room join ROOM --via PEER)\n"},
		{`{"error":"typing notifications are off","kind":"invalid","code":"typing_off"}`, "parley: typing notifications are off (parley settings --typing on)\n"},
		{`{"error":"unknown room r","kind":"not_found"}`, "parley: unknown room r\n"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, tc.body)
		}))
		home := t.TempDir()
		writeAPIFile(t, home, srv.URL, "secret")
		r := runCLI(t, "", "status", "--home", home)
		srv.Close()
		if r.code != 1 || r.stderr != tc.want {
			t.Errorf("answer %s: exit %d, stderr %q, want %q", tc.body, r.code, r.stderr, tc.want)
		}
	}
}

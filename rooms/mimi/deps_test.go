package mimi

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPureImports enforces DESIGN.md §1: the pure core does no I/O and reads
// no clock or global randomness. The helper is copied as is into rooms and
// media; only the lists change.
func TestPureImports(t *testing.T) {
	checkImports(t, ".", []string{
		"github.com/libp2p/",
		"github.com/ipfs/boxo",
		"os", // pure: no file system
		"github.com/dgraph-io/badger",
		"net",
		"os/exec",
		"time",
		"math/rand",
		"testing", // test helpers never leak into production code
	})
}

// checkImports fails for every import of a non-test .go file in dir that
// equals a forbidden entry or lies below it (entries ending in "/" match as
// prefixes; "net" forbids "net" and "net/http").
func checkImports(t *testing.T, dir string, forbidden []string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				base := strings.TrimSuffix(bad, "/")
				if path == base || strings.HasPrefix(path, base+"/") {
					t.Errorf("%s imports %q (forbidden: %q)", name, path, bad)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
}

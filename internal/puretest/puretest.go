// Package puretest checks the dependency rule of docs/design.md §1 from
// the pure packages' tests: crdt, rooms and media (and their sub-packages)
// import nothing that does I/O or reads the clock or global randomness.
// It is imported by tests only.
package puretest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Base is what no pure package may import: the network, storage, processes,
// the wall clock, global randomness, and test helpers.
var Base = []string{
	"github.com/libp2p/",
	"github.com/dgraph-io/badger",
	"net",
	"os/exec",
	"time",
	"math/rand",
	"syscall",
	"unsafe",
	"testing",
}

// CheckImports fails for every import of a non-test .go file in dir that
// equals a forbidden entry or lies below it ("net" also forbids
// "net/http"; a trailing "/" is allowed and means the same).
func CheckImports(t testing.TB, dir string, forbidden ...string) {
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

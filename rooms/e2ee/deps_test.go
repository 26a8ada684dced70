package e2ee

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPureImports keeps e2ee pure (DESIGN.md §1): no network, storage,
// process, wall-clock or global-randomness imports in non-test files.
// Randomness comes from a caller's io.Reader (crypto/hpke draws its own
// internally; that is the standard library's, not an import of ours).
func TestPureImports(t *testing.T) {
	forbidden := []string{
		"github.com/libp2p/", "github.com/dgraph-io/badger", "net", "os", "os/exec",
		"time", "math/rand", "crypto/rand", "syscall", "unsafe", "testing",
	}
	files, err := filepath.Glob("*.go")
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
		t.Fatal("no Go files checked")
	}
}

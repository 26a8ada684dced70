package rooms

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPureImports keeps rooms pure (DESIGN.md §1): no network, storage,
// process, wall-clock or global-randomness imports in non-test files.
func TestPureImports(t *testing.T) {
	banned := []string{
		"net", "os", "os/exec", "time", "math/rand", "math/rand/v2", "crypto/rand",
		"github.com/libp2p/", "github.com/dgraph-io/badger", "syscall", "unsafe",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, b := range banned {
				if path == b || strings.HasPrefix(path, b+"/") || (strings.HasSuffix(b, "/") && strings.HasPrefix(path, b)) {
					t.Errorf("%s imports %q; rooms must stay pure", f, path)
				}
			}
		}
	}
}

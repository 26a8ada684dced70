package api

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoPeerToPeerDeps checks the rule of the package comment: a client of
// the API builds without libp2p, BadgerDB or the node.
func TestNoPeerToPeerDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/libp2p/",
		"github.com/dgraph-io/badger",
		"github.com/parley-p2p/parley/node",
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	for _, d := range deps {
		for _, bad := range forbidden {
			if d == strings.TrimSuffix(bad, "/") || strings.HasPrefix(d, bad) {
				t.Errorf("api depends on %s (forbidden: %s)", d, bad)
			}
		}
	}
}

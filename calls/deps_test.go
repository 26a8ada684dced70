package calls

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNodeDeps checks the rule of the package comment: the call peer
// builds without the node, libp2p or BadgerDB.
func TestNoNodeDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, d := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/parley-p2p/parley/node", "github.com/libp2p/", "github.com/dgraph-io/badger"} {
			if d == strings.TrimSuffix(bad, "/") || strings.HasPrefix(d, bad) {
				t.Errorf("calls depends on %s", d)
			}
		}
	}
}

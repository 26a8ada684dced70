package crdt

import (
	"testing"

	"github.com/parley-p2p/parley/internal/puretest"
)

// TestPureImports enforces docs/design.md §1 for crdt (badger lives in the
// badgerstore sub-package, which is not checked).
func TestPureImports(t *testing.T) {
	puretest.CheckImports(t, ".", puretest.Base...)
}

package mimi

import (
	"testing"

	"github.com/parley-p2p/parley/internal/puretest"
)

// TestPureImports enforces docs/design.md §1 for the MIMI content codec.
func TestPureImports(t *testing.T) {
	puretest.CheckImports(t, ".", append(puretest.Base, "github.com/ipfs/boxo", "os")...)
}

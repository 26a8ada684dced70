package media

import (
	"testing"

	"github.com/parley-p2p/parley/internal/puretest"
)

// TestPureImports enforces docs/design.md §1 for media (the file system belongs
// to the fsstore sub-package).
func TestPureImports(t *testing.T) {
	puretest.CheckImports(t, ".", append(puretest.Base,
		"github.com/ipfs/boxo",
		"mime",        // reads system files; Sniff has its own table
		"crypto/rand", // randomness is injected (NewFileKey takes a reader)
		"os",
	)...)
}

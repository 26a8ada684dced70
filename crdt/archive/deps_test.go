package archive

import (
	"testing"

	"github.com/parley-p2p/parley/internal/puretest"
)

// TestPureImports enforces docs/design.md §1 for the archive format: it reads and
// writes through io.Reader and io.Writer only.
func TestPureImports(t *testing.T) {
	puretest.CheckImports(t, ".", append(puretest.Base, "os", "io/fs", "path/filepath")...)
}

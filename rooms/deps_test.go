package rooms

import (
	"testing"

	"github.com/parley-p2p/parley/internal/puretest"
)

// TestPureImports keeps rooms pure (DESIGN.md §1).
func TestPureImports(t *testing.T) {
	puretest.CheckImports(t, ".", append(puretest.Base, "os", "crypto/rand")...)
}

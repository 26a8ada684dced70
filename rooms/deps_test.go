package rooms

import (
	"testing"

	"github.com/parley-p2p/parley/internal/puretest"
)

// TestPureImports keeps rooms pure (docs/design.md §1).
func TestPureImports(t *testing.T) {
	puretest.CheckImports(t, ".", append(puretest.Base, "os", "crypto/rand")...)
}

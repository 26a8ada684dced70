package e2ee

import (
	"testing"

	"github.com/parley-p2p/parley/internal/puretest"
)

// TestPureImports keeps e2ee pure (docs/design.md §1). Randomness comes from a
// caller's io.Reader (crypto/hpke draws its own internally; that is the
// standard library's, not an import of ours).
func TestPureImports(t *testing.T) {
	puretest.CheckImports(t, ".", append(puretest.Base, "os", "crypto/rand")...)
}

package p2p

import (
	"testing"

	"github.com/parley-p2p/parley/internal/puretest"
)

// The peer protocols reach the engine only through the interfaces of
// engine.go: besides the node (which imports this package, so Go refuses
// the cycle) they import neither the room rules, the API types nor the
// store back-end (docs/design.md §1.1).
func TestNoEngineImports(t *testing.T) {
	puretest.CheckImports(t, ".",
		"github.com/parley-p2p/parley/rooms",
		"github.com/parley-p2p/parley/api",
		"github.com/parley-p2p/parley/crdt/badgerstore",
		"github.com/dgraph-io/badger")
}

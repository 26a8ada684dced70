package crdt_test

import (
	"testing"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/storetest"
)

func TestMemStoreConformance(t *testing.T) {
	storetest.RunStoreConformance(t, storetest.Opener{
		Open: func(*testing.T) crdt.Store { return crdt.NewMemStore() },
	})
}

package p2p

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// The gossip budget of a limited connection: writes past it fail and reset
// the stream, no new stream opens on the connection, another connection
// has its own budget, and a closed connection's count is forgotten.
func TestLimitBudget(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	a, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	b, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	// The handler reads until the stream ends (a handler that resets at
	// once can race the protocol negotiation: "stream reset").
	b.SetStreamHandler("/test", func(s network.Stream) { io.Copy(io.Discard, s); s.Close() })
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := mn.ConnectPeers(a.ID(), b.ID()); err != nil {
		t.Fatal(err)
	}
	s, err := a.NewStream(context.Background(), b.ID(), "/test")
	if err != nil {
		t.Fatal(err)
	}
	id := s.Conn().ID()
	bud := &limitBudget{max: 100, spent: map[string]int64{}}
	if !bud.open(a.Network(), id) {
		t.Fatal("a fresh connection has no budget")
	}
	bs := &budgetStream{Stream: s, b: bud, conn: id}
	bud.take(id, 60)
	if _, err := bs.Write(make([]byte, 50)); !errors.Is(err, ErrLimitedBudget) {
		t.Fatalf("a write past the budget: %v", err)
	}
	if bud.open(a.Network(), id) {
		t.Fatal("a stream opens on a connection whose budget is spent")
	}
	if !bud.open(a.Network(), "another") || !bud.take("another", 100) {
		t.Fatal("another connection shares the spent budget")
	}
	if err := a.Network().ClosePeer(b.ID()); err != nil {
		t.Fatal(err)
	}
	bud.open(a.Network(), "another")
	if len(bud.spent) != 0 {
		t.Fatalf("closed connections still counted: %v", bud.spent)
	}
}

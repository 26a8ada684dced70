package p2p

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// staleConnPair is a host a with two TCP connections over loopback to
// one peer ID: the first from old, the second from fresh, two hosts with
// the same key (a peer that restarted while a kept the old connection).
func staleConnPair(t *testing.T) (a, old, fresh host.Host, oldConn, freshConn network.Conn) {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	newHost := func(opts ...libp2p.Option) host.Host {
		h, err := libp2p.New(append(opts, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	a, old, fresh = newHost(), newHost(libp2p.Identity(sk)), newHost(libp2p.Identity(sk))
	ctx := context.Background()
	for _, h := range []host.Host{old, fresh} {
		if err := h.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	conns := a.Network().ConnsToPeer(old.ID())
	if len(conns) != 2 {
		t.Fatalf("a holds %d connections to the peer, want 2", len(conns))
	}
	oldConn, freshConn = conns[0], conns[1]
	if freshConn.Stat().Opened.Before(oldConn.Stat().Opened) {
		oldConn, freshConn = freshConn, oldConn
	}
	return a, old, fresh, oldConn, freshConn
}

// TestDropStaleConnsKeepsLive: an older connection that answers the ping
// stays open.
func TestDropStaleConnsKeepsLive(t *testing.T) {
	a, _, _, oldConn, freshConn := staleConnPair(t)
	if n := DropStaleConns(context.Background(), a.Network(), freshConn, StaleConnTimeout); n != 0 {
		t.Fatalf("closed %d connections, want 0", n)
	}
	if oldConn.IsClosed() || freshConn.IsClosed() {
		t.Fatal("a live connection was closed")
	}
}

// TestDropStaleConnsClosesSilent: the old host takes the ping stream and
// never answers, as a crashed peer's connection stays silent; the older
// connection is closed within the wait (the new one's round trips, at
// least staleMinWait), the new one stays, and the new one's own check
// closes nothing (there is nothing older).
func TestDropStaleConnsClosesSilent(t *testing.T) {
	a, old, _, oldConn, freshConn := staleConnPair(t)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	old.SetStreamHandler(ping.ID, func(s network.Stream) { <-hold; s.Reset() })
	start := time.Now()
	if n := DropStaleConns(context.Background(), a.Network(), freshConn, StaleConnTimeout); n != 1 {
		t.Fatalf("closed %d connections, want 1", n)
	}
	if took := time.Since(start); took > StaleConnTimeout {
		t.Fatalf("the check took %v, more than %v", took, StaleConnTimeout)
	}
	if !oldConn.IsClosed() || freshConn.IsClosed() {
		t.Fatalf("old closed %v, new closed %v; want true, false", oldConn.IsClosed(), freshConn.IsClosed())
	}
	if n := DropStaleConns(context.Background(), a.Network(), freshConn, StaleConnTimeout); n != 0 {
		t.Fatalf("the second check closed %d connections, want 0", n)
	}
}

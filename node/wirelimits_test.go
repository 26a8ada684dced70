package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/mediasvc"
	"github.com/parley-p2p/parley/node/p2p"
)

// hostileProtocols are the protocols a Parley node serves to any peer.
var hostileProtocols = []protocol.ID{p2p.SyncProtocol, mediasvc.Protocol, p2p.InviteProtocol, p2p.LinkProtocol}

// hostileFrameLen is the length a hostile peer announces: the largest
// frame any protocol allowed before limits (4 MiB) minus one octet.
const hostileFrameLen = 4<<20 - 1

// TestHostileFramesBounded (issue 17, item 1): fresh identities open
// streams on every protocol of a node running the daemon's libp2p stack
// (TCP on loopback, its resource manager) and send the length prefix of a
// frame of 4 MiB minus one octet and part of its body. The node must not
// buffer what the prefix announces: its heap grows by a small fraction of
// it, and the node then still serves an honest peer a block of a MiB.
func TestHostileFramesBounded(t *testing.T) {
	const (
		identities = 20
		perProto   = 4
		body       = 8 << 10
		bound      = 32 << 20 // heap growth allowed; the frames announce 1.3 GB
	)
	master, ident := newUser(t)
	sk, err := crypto.UnmarshalEd25519PrivateKey(append(ident.Device.Seed(), pubBytes(ident.Device.Public())...))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := hostOptions()
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(append(opts, libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rep, err := NewReplica(h, crdt.NewMemStore(), ident, ReplicaOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := rep.Serve(ctx); err != nil {
			t.Errorf("replica: %v", err)
		}
	}()
	<-rep.Ready()
	store := media.NewMemStore()
	m := mediasvc.New(h, store, nil)
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.Serve(ctx)
	}()
	l := p2p.NewLinker(h, rep.Engine, master, nil)
	defer l.Close()
	eventually(t, 60*time.Second, "handlers registered", func() (bool, string) {
		for _, p := range hostileProtocols {
			if !slices.Contains(h.Mux().Protocols(), p) {
				return false, string(p)
			}
		}
		return true, ""
	})
	target := peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}

	// The attackers connect first, so the baseline holds their hosts.
	attackers := make([]host.Host, identities)
	for i := range attackers {
		a, err := libp2p.New(libp2p.NoListenAddrs, libp2p.ResourceManager(&network.NullResourceManager{}))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if err := a.Connect(ctx, target); err != nil {
			t.Fatal(err)
		}
		attackers[i] = a
	}
	hs := startHeapSampler()
	var grewOnce sync.Once
	var grew uint64
	growth := func() uint64 { grewOnce.Do(func() { grew = hs.growth() }); return grew }
	defer growth()

	var opened, reset atomic.Int64
	var aw sync.WaitGroup
	for _, a := range attackers {
		aw.Add(1)
		go func() {
			defer aw.Done()
			n, r := hostileStreams(ctx, a, h.ID(), perProto, body)
			opened.Add(int64(n))
			reset.Add(int64(r))
		}()
	}
	aw.Wait()
	grew = growth()
	t.Logf("%d identities: %d streams opened, %d ended by the node; heap grew %d KiB at most (bound %d KiB)",
		identities, opened.Load(), reset.Load(), grew>>10, bound>>10)
	if grew > bound {
		t.Errorf("heap grew by %d MiB under hostile frames, want at most %d MiB", grew>>20, bound>>20)
	}

	// An honest peer is still served, a block of a MiB included.
	data := make([]byte, 1<<20)
	rand.Read(data)
	id := media.BlockCID(cid.Raw, data)
	if err := store.Put(id, data); err != nil {
		t.Fatal(err)
	}
	honest, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer honest.Close()
	if err := honest.Connect(ctx, target); err != nil {
		t.Fatal(err)
	}
	hm := mediasvc.New(honest, media.NewMemStore(), nil)
	if err := hm.Fetch(ctx, id); err != nil {
		t.Fatalf("honest fetch after the attack: %v", err)
	}
	if got, err := hm.Store().Get(id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("honest fetch after the attack: %v", err)
	}
}

// hostileStreams opens perProto streams on every protocol from a to p, on
// each sends the length prefix of a hostileFrameLen frame and body octets
// of it, and waits (at most a minute) until p ends them. It returns the
// streams opened and those p ended.
func hostileStreams(ctx context.Context, a host.Host, p peer.ID, perProto, body int) (opened, ended int) {
	frame := binary.AppendUvarint(nil, hostileFrameLen)
	frame = append(frame, make([]byte, body)...)
	var sts []network.Stream
	for _, proto := range hostileProtocols {
		for range perProto {
			st, err := a.NewStream(ctx, p, proto)
			if err != nil {
				continue
			}
			st.SetDeadline(time.Now().Add(time.Minute))
			if _, err := st.Write(frame); err != nil {
				st.Reset()
				ended++
				continue
			}
			sts = append(sts, st)
		}
	}
	opened = len(sts) + ended
	for _, st := range sts {
		// The node answers nothing to a partial frame: a read ends when it
		// resets or closes the stream (or at the deadline).
		if _, err := io.Copy(io.Discard, st); err == nil || !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
			ended++
		}
		st.Reset()
	}
	return opened, ended
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// publicRoomOn creates a public room on replica i of tn.
func publicRoomOn(tb testing.TB, tn *testNet, i int) crdt.RoomID {
	tb.Helper()
	room, err := tn.reps[i].Engine.CreateRoom(tn.ctx, api.RoomCreateReq{Public: true})
	if err != nil {
		tb.Fatal(err)
	}
	rid, _ := crdt.ParseID(room.Room)
	return rid
}

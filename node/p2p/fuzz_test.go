package p2p

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-msgio"
	"golang.org/x/time/rate"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/wire"
)

// FuzzSyncFrame sends arbitrary frames to a live sync handler (real libp2p
// stack on mocknet) and checks that it never crashes and keeps serving.
func FuzzSyncFrame(f *testing.F) {
	tn := newTestNet(&testing.T{}, 2)
	defer tn.close()
	rid := tn.room(0, "fuzz")
	ref := RefOf(rid)
	ident := tn.peers[1].ident
	valid := func(m *syncMsg) []byte {
		b, err := crdt.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	hello := valid(&syncMsg{Op: opHeads, Room: ref[:], User: ident.User[:], Cert: ident.Cert})
	f.Add(hello, []byte{})
	f.Add(hello, valid(&syncMsg{Op: opSince, Room: ref[:]}))
	f.Add(hello, valid(&syncMsg{Op: opGet, Room: ref[:], IDs: [][]byte{[]byte(rid)}}))
	f.Add(hello, valid(&syncMsg{Op: opReconcile, Room: ref[:], Msg: []byte{0x51, 0x00, 0x00}}))
	f.Add(hello, valid(&syncMsg{Op: opReconcile, Room: ref[:], Msg: []byte{0x51}}))
	f.Add([]byte{0xa1, 0x62, 'o', 'p'}, []byte{0xff})
	f.Add(valid(&syncMsg{Op: opHeads, Room: []byte("short")}), []byte("x"))

	server := tn.peers[0].host.ID()
	client := tn.peers[1].host
	// The fuzzer sends far more than the 200 requests per second a peer
	// may; the limit is not what this target checks.
	tn.peers[0].syncer.PeerLimits = wire.NewPeerLimits(MaxPeerSessions, rate.Inf, 0)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := client.NewStream(ctx, server, SyncProtocol)
		if err != nil {
			t.Skip("stream:", err)
		}
		defer st.Close()
		st.SetDeadline(time.Now().Add(5 * time.Second))
		w := msgio.NewVarintWriter(st)
		r := msgio.NewVarintReaderSize(st, syncPageFrame)
		w.WriteMsg(first)
		w.WriteMsg(second)
		st.CloseWrite()
		for {
			b, err := r.ReadMsg()
			if err != nil {
				break
			}
			if _, err := decodeSyncMsg(b); err != nil {
				t.Fatalf("server sent an undecodable frame: %v", err)
			}
		}
		// The server still answers a proper session (the client proves the
		// room first, as every client must).
		if err := tn.peers[1].gate.Ensure(ctx, server, rid); err != nil {
			t.Fatal(err)
		}
		c, err := tn.peers[1].syncer.open(ctx, server)
		if err != nil {
			t.Fatal(err)
		}
		defer c.st.Close()
		if err := c.send(&syncMsg{Op: opHeads, Room: ref[:], User: ident.User[:], Cert: ident.Cert}); err != nil {
			t.Fatal(err)
		}
		if m, err := c.recv(); err != nil || m.Op != opHeads {
			t.Fatalf("server stopped serving: %v %v", m, err)
		}
	})
}

// FuzzHeadsAnnouncement feeds arbitrary heads announcements from a peer
// that proved the room to a live node's heads validator: it never crashes,
// passes on only an announcement whose heads the node holds, and rejects
// one that does not parse.
func FuzzHeadsAnnouncement(f *testing.F) {
	tn := newTestNet(f, 2)
	rid := tn.room(0, "fuzz heads")
	ref := RefOf(rid)
	heads, _, err := tn.peers[0].engine.Heads(context.Background(), rid)
	if err != nil {
		f.Fatal(err)
	}
	p0 := tn.peers[0]
	g := &Gossip{self: p0.host.ID(), engine: p0.engine, sync: p0.syncer, gate: p0.gate, log: slog.New(slog.DiscardHandler)}
	valid := func(ids ...[]byte) []byte {
		b, err := crdt.Marshal(headsMsg{Room: ref[:], Heads: ids})
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(valid([]byte(heads[0])))
	f.Add(valid([]byte(heads[0]), []byte(rid)))
	f.Add(valid([]byte("not an id")))
	f.Add(valid())
	f.Add([]byte{0xa2, 0x64, 'r', 'o', 'o', 'm'})
	validate := g.headsValidator(rid)
	from := tn.peers[1].host.ID()
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res := validate(ctx, from, &pubsub.Message{Message: &pb.Message{Data: data}})
		var msg headsMsg
		parses := crdt.UnmarshalCanonical(data, &msg) == nil && string(msg.Room) == string(ref[:]) && len(msg.Heads) <= maxAnnouncedHeads
		if res == pubsub.ValidationAccept {
			if !parses {
				t.Fatal("passed on an announcement that does not parse")
			}
			for _, h := range msg.Heads {
				id, err := crdt.IDFromBytes(h)
				if err != nil {
					t.Fatal("passed on an announcement with a malformed head")
				}
				if known, _ := p0.engine.Known(ctx, rid, []crdt.EventID{id}); !known[0] {
					t.Fatalf("passed on an announcement naming %s, which the node lacks", id)
				}
			}
		}
		if !parses && res != pubsub.ValidationReject {
			t.Fatalf("an announcement that does not parse: %v, want reject", res)
		}
	})
}

// FuzzEventsPage: the events page's own decoder accepts only what the
// strict decoder accepts, with the same message, and its encoder writes
// what crdt.Marshal writes for any page (the events cut from the input).
func FuzzEventsPage(f *testing.F) {
	page := func(evs ...[]byte) []byte {
		b, err := crdt.Marshal(&syncMsg{Op: opEvents, Events: evs})
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(page([]byte("a"), []byte{}, bytes.Repeat([]byte{7}, 300)), uint8(3))
	f.Add(page(bytes.Repeat([]byte{1}, 70000)), uint8(1))
	f.Add(page([]byte("x")), uint8(0))
	f.Add([]byte(eventsPageHead+"\x80"), uint8(2))          // no events: the field would be omitted
	f.Add([]byte(eventsPageHead+"\x81\x58\x01x"), uint8(5)) // a head longer than needed
	f.Add([]byte(eventsPageHead+"\x9f\x41x\xff"), uint8(7)) // indefinite array
	f.Add([]byte(eventsPageHead+"\x81\x41x\x00"), uint8(9)) // trailing byte
	f.Fuzz(func(t *testing.T, b []byte, cut uint8) {
		if m, ok := decodeEventsPage(b); ok {
			var ref syncMsg
			if err := crdt.UnmarshalCanonical(b, &ref); err != nil {
				t.Fatalf("%x: the page decoder accepts what the strict decoder refuses: %v", b, err)
			}
			if !reflect.DeepEqual(*m, ref) {
				t.Fatalf("%x: page decoder %+v, strict decoder %+v", b, *m, ref)
			}
		}
		var evs [][]byte
		for rest, k := b, int(cut)+1; len(rest) > 0; k = k*7%13 + 1 {
			n := min(k, len(rest))
			evs = append(evs, rest[:n])
			rest = rest[n:]
		}
		if cut%4 == 0 {
			evs = append(evs, []byte{})
		}
		got, ok := appendEventsPage(nil, evs)
		want, err := crdt.Marshal(&syncMsg{Op: opEvents, Events: evs})
		if err != nil {
			t.Fatal(err)
		}
		if ok != (len(evs) > 0 && len(evs) <= maxPageArray) || ok && !bytes.Equal(got, want) {
			t.Fatalf("%d events: the page encoder (%v) and crdt.Marshal differ", len(evs), ok)
		}
		if ok {
			m, ok := decodeEventsPage(got)
			if !ok || !reflect.DeepEqual(m.Events, evs) {
				t.Fatalf("%d events: the page decoder does not read back what the encoder wrote", len(evs))
			}
			// pageBuilder writes the same page, into a new buffer and into
			// a reused one (a page of other events before).
			pb := pageBuilder{}
			for _, e := range evs {
				pb.add(e)
			}
			built := pb.page()
			if !bytes.Equal(built, want) {
				t.Fatalf("%d events: pageBuilder and crdt.Marshal differ", len(evs))
			}
			pb = pageBuilder{buf: built[:0]}
			for _, e := range evs[:len(evs)/2+1] {
				pb.add(e)
			}
			first := pb.page()
			pb = pageBuilder{buf: first[:0]}
			for _, e := range evs {
				pb.add(e)
			}
			if !bytes.Equal(pb.page(), want) {
				t.Fatalf("%d events: pageBuilder over a reused buffer and crdt.Marshal differ", len(evs))
			}
		}
	})
}

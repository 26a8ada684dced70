package node

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// FuzzCallBody: a call event body decodes strictly or not at all; what
// decodes re-encodes to the same bytes and shows in the timeline.
func FuzzCallBody(f *testing.F) {
	id := bytes.Repeat([]byte{7}, callIDLen)
	for _, c := range []CallBody{
		{Call: id, Action: api.CallStart, Video: true},
		{Call: id, Action: api.CallJoin},
		{Call: id, Action: api.CallLeave},
		{Call: id, Action: api.CallEnd, DurationMS: 61_000},
		{Call: id, Action: api.CallEnd, Missed: true},
		{Call: id[:3], Action: api.CallStart},
		{Call: id, Action: "dance"},
	} {
		f.Add(rooms.Encode(c))
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, ok := decodeCallBody(b)
		if !ok {
			return
		}
		if !bytes.Equal(rooms.Encode(c), b) {
			t.Fatalf("%x decoded to %+v, which encodes otherwise", b, c)
		}
		if len(c.Call) != callIDLen || c.DurationMS < 0 {
			t.Fatalf("accepted %+v", c)
		}
	})
}

// FuzzCallSignal: a signed signal whose body is anything is taken in
// without a crash; what reaches a watcher is a well-formed call signal.
// Raw wire bytes go through the same path (they fail the signature), and
// so do contents sealed to the receiving device (its inner decoder).
func FuzzCallSignal(f *testing.F) {
	b := newBus(f, 1, 2)
	room, id := b.contentRoom(false)
	e0, e1 := b.engines[0], b.engines[1]
	ch, stop, err := e1.Watch(b.ctx, room)
	b.ok(err)
	defer stop()
	dev1 := b.idents[1].Device.Public()
	cid := bytes.Repeat([]byte{1}, callIDLen)
	kem0 := b.engines[0].kr.recRaw
	for _, s := range []*callSig{
		{ID: cid, ToUser: b.idents[1].User[:], ToDevice: dev1[:], Op: api.CallOpOffer, SDP: "v=0", KEM: kem0},
		{ID: cid, ToUser: b.idents[1].User[:], ToDevice: dev1[:], Op: api.CallOpCandidate, Candidate: `{"candidate":""}`},
		{ID: cid, ToUser: b.idents[1].User[:], ToDevice: dev1[:], Op: api.CallOpHangup},
		{ID: cid, ToUser: b.idents[1].User[:], ToDevice: dev1[:], Op: api.CallOpState, Muted: true},
		{ID: cid, ToUser: b.idents[1].User[:], ToDevice: dev1[:], Op: api.CallOpAnswer},
		{ID: cid, ToUser: b.idents[1].User[:], ToDevice: dev1[:], Op: api.CallOpOffer, SDP: "v=0"},
		{ID: cid[:2], ToUser: b.idents[1].User[:], ToDevice: dev1[:], Op: api.CallOpHangup},
	} {
		// As the sealed content (mode 2, which the fuzz function seals to
		// node 1's device, so that the fuzzer reaches the inner decoder),
		// and sealed, as the signal's body (mode 0).
		f.Add(rooms.Encode(s), uint8(2))
		box, err := e2ee.SealToDevice(id, b.idents[0].Device.Public(), e1.kr.rec, rooms.Encode(s))
		b.ok(err)
		f.Add(rooms.Encode(ephBody{Kind: ephKindCall, CallBox: &callBox{To: dev1[:], Sealed: box}}), uint8(0))
	}
	_, err = e1.CallStart(b.ctx, api.CallStartReq{Room: room}) // node 0 learns its key
	b.ok(err)
	b.drain()
	_, sealed, err := e0.CallSignal(b.ctx, api.CallSignalReq{Room: room, Call: strings.Repeat("0a", 16), ToUser: b.user(1), ToDevice: dev1.String(), Op: api.CallOpHangup})
	b.ok(err)
	f.Add(sealed, uint8(1))
	f.Add([]byte{0xa1, 0x64, 'k', 'i', 'n', 'd', 0x64, 'c', 'a', 'l', 'l'}, uint8(0))
	ident := b.idents[0]
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		if mode == 2 {
			box, err := e2ee.SealToDevice(id, ident.Device.Public(), e1.kr.rec, data)
			if err != nil {
				t.Fatal(err)
			}
			data = rooms.Encode(ephBody{Kind: ephKindCall, CallBox: &callBox{To: dev1[:], Sealed: box}})
		}
		if mode != 1 {
			dev := ident.Device.Public()
			ref := p2p.RefOf(id)
			w := ephWire{Room: ref[:], User: ident.User[:], Device: dev[:], Cert: ident.Cert, TS: e0.now().UnixMilli(), Body: data}
			w.Sig = ident.Device.Sign(append([]byte(ephSigLabel), rooms.Encode(w)...))
			data = rooms.Encode(w)
		}
		e1.Signal(context.Background(), id, data)
		sigs, _ := callItems(e1, ch)
		for _, s := range sigs {
			if len(s.Call) != 32 || s.FromUser != b.user(0) {
				t.Fatalf("watcher got %+v", s)
			}
			switch s.Op {
			case api.CallOpOffer, api.CallOpAnswer, api.CallOpCandidate, api.CallOpHangup, api.CallOpDecline, api.CallOpState:
			default:
				t.Fatalf("watcher got op %q", s.Op)
			}
		}
	})
}

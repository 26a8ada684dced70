package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-msgio"
	"github.com/multiformats/go-varint"
	"golang.org/x/time/rate"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/wire"
)

// The derivations are fixed (docs/protocol.md 2.1): a change here is a
// protocol change.
func TestRoomRefDerivation(t *testing.T) {
	room := crdt.IDOf([]byte("a room"))
	ref := RefOf(room)
	if ref == RefOf(crdt.IDOf([]byte("another room"))) {
		t.Fatal("two rooms share a reference")
	}
	key := labelled(roomKeyLabel, []byte(room))
	if bytes.Equal(key[:], ref[:]) {
		t.Fatal("the room key equals the reference")
	}
	topic := eventTopic(room)
	if !strings.HasPrefix(topic, "/parley/room/") || !strings.HasSuffix(topic, "/ev/2") || len(topic) != len("/parley/room//ev/2")+52 {
		t.Fatalf("topic %q", topic)
	}
	if strings.Contains(topic, room.String()) || strings.ToLower(topic) != topic {
		t.Fatalf("topic %q", topic)
	}
	a := proofMAC(room, roleResponder, make([]byte, 32), make([]byte, 32), "a", "b")
	if bytes.Equal(a, proofMAC(room, roleInitiator, make([]byte, 32), make([]byte, 32), "a", "b")) ||
		bytes.Equal(a, proofMAC(room, roleResponder, make([]byte, 32), make([]byte, 32), "b", "a")) {
		t.Fatal("the MAC does not bind the role and the peers")
	}
}

// A peer that knows only a room's reference cannot complete the proof: the
// responder's MAC gives nothing away, a guessed answer is not acknowledged,
// and the room's log stays closed to it.
func TestRoomProofRefusesGuess(t *testing.T) {
	tn := newTestNet(t, 2)
	id := tn.room(0, "secret")
	ref := RefOf(id)
	server := tn.peers[0].host.ID()
	ctx, cancel := context.WithTimeout(tn.ctx, 30*time.Second)
	defer cancel()
	st, err := tn.peers[1].host.NewStream(ctx, server, RoomProofProtocol)
	if err != nil {
		t.Fatal(err)
	}
	f := newFrames(st, proofIdle, decodeProofMsg)
	nonce := make([]byte, proofNonceSize)
	rand.Read(nonce)
	if err := f.send(&proofMsg{Nonce: nonce, Refs: [][]byte{ref[:]}}); err != nil {
		t.Fatal(err)
	}
	ch, _, err := f.recv(maxProofFrame, false)
	if err != nil || len(ch.Refs) != 1 || len(ch.MACs) != 1 {
		t.Fatalf("challenge %+v %v", ch, err)
	}
	guess := make([]byte, 32)
	rand.Read(guess)
	if err := f.send(&proofMsg{Refs: [][]byte{ref[:]}, MACs: [][]byte{guess}}); err != nil {
		t.Fatal(err)
	}
	if ack, _, err := f.recv(maxProofFrame, false); err != nil || len(ack.Refs) != 0 {
		t.Fatalf("a guessed MAC was acknowledged: %+v %v", ack, err)
	}
	st.Close()
	if tn.peers[0].gate.Proved(tn.peers[1].host.ID(), ref) {
		t.Fatal("a guess proved the room")
	}
	c, err := tn.peers[1].syncer.open(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.st.Close()
	ident := tn.peers[1].ident
	if err := c.send(&syncMsg{Op: opHeads, Room: ref[:], User: ident.User[:], Cert: ident.Cert}); err != nil {
		t.Fatal(err)
	}
	if m, err := c.recv(); err == nil {
		t.Fatalf("served an unproven peer: %+v", m)
	}
	// Knowing the id, the same peer proves it and is served (a blind host).
	if err := tn.peers[1].gate.Ensure(ctx, server, id); err != nil {
		t.Fatal(err)
	}
	c2, err := tn.peers[1].syncer.open(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.st.Close()
	if err := c2.send(&syncMsg{Op: opHeads, Room: ref[:], User: ident.User[:], Cert: ident.Cert}); err != nil {
		t.Fatal(err)
	}
	if m, err := c2.recv(); err != nil || m.Op != opHeads || len(m.IDs) == 0 {
		t.Fatalf("a proven peer was not served: %+v %v", m, err)
	}
}

// FuzzDecodeProofMsg: the decoder never panics and what it accepts
// re-encodes to what it decodes.
func FuzzDecodeProofMsg(f *testing.F) {
	ref := RefOf(crdt.IDOf([]byte("r")))
	for _, m := range []proofMsg{
		{Nonce: make([]byte, 32), Refs: [][]byte{ref[:]}},
		{Nonce: make([]byte, 32), Refs: [][]byte{ref[:]}, MACs: [][]byte{make([]byte, 32)}},
		{Refs: [][]byte{ref[:]}},
		{},
	} {
		b, _ := crdt.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x65, 'n', 'o', 'n', 'c', 'e', 0x41, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeProofMsg(b)
		if err != nil {
			return
		}
		again, err := crdt.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeProofMsg(again); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
	})
}

// FuzzRoomProof sends arbitrary frames to a live room-proof handler (real
// libp2p stack on mocknet) and checks that it never crashes, never
// acknowledges a room the frames did not prove, and still proves.
func FuzzRoomProof(f *testing.F) {
	tn := newTestNet(&testing.T{}, 2)
	defer tn.close()
	id := tn.room(0, "fuzz")
	ref := RefOf(id)
	valid := func(m *proofMsg) []byte {
		b, err := crdt.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	nonce := make([]byte, 32)
	hello := valid(&proofMsg{Nonce: nonce, Refs: [][]byte{ref[:]}})
	f.Add(hello, valid(&proofMsg{Refs: [][]byte{ref[:]}, MACs: [][]byte{make([]byte, 32)}}))
	f.Add(hello, valid(&proofMsg{Refs: [][]byte{ref[:], ref[:]}, MACs: [][]byte{make([]byte, 32), make([]byte, 32)}}))
	f.Add(hello, []byte{})
	f.Add(valid(&proofMsg{Nonce: nonce}), valid(&proofMsg{}))
	f.Add([]byte{0xa1, 0x64, 'r', 'e', 'f', 's'}, []byte{0xff})

	server := tn.peers[0].host.ID()
	client := tn.peers[1]
	// The fuzzer outruns the per-peer rate limit, which is not under test.
	tn.peers[0].gate.PeerLimits = wire.NewPeerLimits(64, rate.Inf, 1)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := client.host.NewStream(ctx, server, RoomProofProtocol)
		if err != nil {
			t.Skip("stream:", err)
		}
		defer st.Close()
		st.SetDeadline(time.Now().Add(5 * time.Second))
		w := msgio.NewVarintWriter(st)
		rd := msgio.NewVarintReaderSize(st, maxProofFrame)
		w.WriteMsg(first)
		w.WriteMsg(second)
		st.CloseWrite()
		for i := 0; ; i++ {
			b, err := rd.ReadMsg()
			if err != nil {
				break
			}
			m, err := decodeProofMsg(b)
			if err != nil {
				t.Fatalf("server sent an undecodable frame: %v", err)
			}
			if i == 1 && len(m.Refs) > 0 {
				t.Fatalf("server acknowledged unproven rooms")
			}
		}
		if tn.peers[0].gate.Proved(client.host.ID(), ref) {
			t.Fatal("fuzzed frames proved the room")
		}
		// The server still runs a proper exchange.
		if err := client.gate.prove(ctx, server, []crdt.RoomID{id}); err != nil || !tn.peers[0].gate.Proved(client.host.ID(), ref) {
			t.Fatalf("server stopped proving: %v", err)
		}
		tn.peers[0].gate.Forget(client.host.ID())
	})
}

// readerStream is a stream that only reads.
type readerStream struct {
	network.Stream
	r io.Reader
}

func (s readerStream) Read(p []byte) (int, error) { return s.r.Read(p) }

// TestGatedStreamDelay: with a frame delay, each frame is read once its
// own delay (drawn when it arrived) has passed, in order: a frame whose
// delay ends before its predecessor's waits for it, and the delays do not
// add up (virtual time).
func TestGatedStreamDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var in []byte
		for _, f := range []string{"a", "bb", "ccc"} {
			in = binary.AppendUvarint(in, uint64(len(f)))
			in = append(in, f...)
		}
		delays := []time.Duration{10 * time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond}
		k := 0
		var sizes []int
		gs := newGatedStream(readerStream{r: bytes.NewReader(in)}, 64, func(n int) time.Duration { sizes = append(sizes, n); k++; return delays[k-1] })
		defer gs.stop()
		start := time.Now()
		var got []string
		buf := make([]byte, 64)
		for range delays {
			n, err := gs.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%x@%v", buf[:n], time.Since(start)))
		}
		if _, err := gs.Read(buf); err != io.EOF {
			t.Errorf("after the frames: %v, want EOF", err)
		}
		if want := []string{"0161@10ms", "026262@10ms", "03636363@20ms"}; !slices.Equal(got, want) {
			t.Errorf("read %v, want %v", got, want)
		}
		if want := []int{2, 3, 4}; !slices.Equal(sizes, want) {
			t.Errorf("delay called with sizes %v, want %v (each frame with its prefix)", sizes, want)
		}
	})
	// A delay that blocks (a simulated CPU working on the frame) holds
	// the frames behind it on the stream: they add up.
	synctest.Test(t, func(t *testing.T) {
		var in []byte
		for _, f := range []string{"a", "bb"} {
			in = binary.AppendUvarint(in, uint64(len(f)))
			in = append(in, f...)
		}
		gs := newGatedStream(readerStream{r: bytes.NewReader(in)}, 64, func(n int) time.Duration {
			time.Sleep(time.Duration(n) * time.Millisecond)
			return 0
		})
		defer gs.stop()
		start := time.Now()
		buf := make([]byte, 64)
		var got []time.Duration
		for range 2 {
			if _, err := gs.Read(buf); err != nil {
				t.Fatal(err)
			}
			got = append(got, time.Since(start))
		}
		if want := []time.Duration{2 * time.Millisecond, 5 * time.Millisecond}; !slices.Equal(got, want) {
			t.Errorf("frames read at %v, want %v", got, want)
		}
	})
	// Stopped while frames are held and the wire is still open: every
	// goroutine of the stream ends (synctest fails on one left blocked).
	synctest.Test(t, func(t *testing.T) {
		r, w := io.Pipe()
		defer w.Close()
		gs := newGatedStream(readerStream{r: r}, 64, func(int) time.Duration { return time.Hour })
		w.Write([]byte{1, 'a'})
		synctest.Wait()
		gs.stop()
		r.Close()
		synctest.Wait()
	})
}

// FuzzGatedStream: what pubsub reads through a gated stream is exactly the
// whole frames (of at most the limit) at the start of what the peer sent,
// then an error or the end, whatever the peer sent.
func FuzzGatedStream(f *testing.F) {
	f.Add([]byte{3, 'a', 'b', 'c', 0, 1})
	f.Add(binary.AppendUvarint(nil, 1<<40))
	f.Add([]byte{0x80, 0x00, 2, 'x'})
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 64
		off := 0
		for {
			n, k, err := varint.FromUvarint(in[off:])
			if err != nil || n > limit || uint64(len(in)-off-k) < n {
				break
			}
			off += k + int(n)
		}
		gs := newGatedStream(readerStream{r: bytes.NewReader(in)}, limit, nil)
		defer gs.stop()
		got, _ := io.ReadAll(gs)
		if !bytes.Equal(got, in[:off]) {
			t.Fatalf("read %x, want %x", got, in[:off])
		}
	})
}

// writerStream is a network.Stream that only writes, into w.
type writerStream struct {
	network.Stream
	w *bytes.Buffer
}

func (s writerStream) Write(p []byte) (int, error) { return s.w.Write(p) }

// TestSendHeldStream: FrameSend is called with each frame's size before
// the frame is written through.
func TestSendHeldStream(t *testing.T) {
	var out bytes.Buffer
	var sizes []int
	s := sendHeldStream{writerStream{w: &out}, func(n int) { sizes = append(sizes, n); out.WriteString("|") }}
	for _, f := range []string{"\x01a", "\x02bb"} {
		if n, err := s.Write([]byte(f)); n != len(f) || err != nil {
			t.Fatalf("write %q: %d, %v", f, n, err)
		}
	}
	if !slices.Equal(sizes, []int{2, 3}) || out.String() != "|\x01a|\x02bb" {
		t.Errorf("sizes %v, written %q", sizes, out.String())
	}
}

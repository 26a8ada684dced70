package e2ee

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// chat is a room with a create event and an epoch, for message tests.
type chat struct {
	create *crdt.Event
	key    *EpochKey
	alice  *device
	bob    *device
}

func newChat(t testing.TB) *chat {
	t.Helper()
	r := seeded(10)
	alice, bob := newDevice(t, r, nil), newDevice(t, r, nil)
	create, err := crdt.Sign(alice.id, crdt.Draft{Type: crdt.TypeCreate, TS: 1, Body: []byte("params")})
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewEpoch(r, create.ID)
	if err != nil {
		t.Fatal(err)
	}
	return &chat{create: create, key: k, alice: alice, bob: bob}
}

func (c *chat) draft(body []byte) crdt.Draft {
	id := c.key.ID()
	return crdt.Draft{
		Room: c.create.ID, Type: "message", Seq: 1, Self: c.create.ID,
		Prev: []crdt.EventID{c.create.ID}, Auth: []crdt.EventID{c.create.ID},
		Depth: 1, TS: 2, Epoch: id[:], Body: body,
	}
}

// send seals plaintext into an event by dev, the way the node will.
func (c *chat) send(t testing.TB, dev *device, plaintext []byte) *crdt.Event {
	t.Helper()
	d := c.draft(nil)
	h, err := DraftHeader(dev.id.User, dev.ID(), d)
	if err != nil {
		t.Fatal(err)
	}
	if d.Body, err = c.key.Seal(rand.Reader, h, plaintext); err != nil {
		t.Fatal(err)
	}
	ev, err := crdt.Sign(dev.id, d)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func (c *chat) read(ev *crdt.Event) ([]byte, error) {
	h, err := EventHeader(ev)
	if err != nil {
		return nil, err
	}
	return c.key.Open(h, ev.Body)
}

func TestSealOpenThroughEvents(t *testing.T) {
	c := newChat(t)
	for _, n := range []int{0, 1, 255, 256, 4095, 4096, 5000, 40000, MaxPlaintext} {
		msg := bytes.Repeat([]byte("PLAINTEXT-MARKER-"), n/17+1)[:n]
		ev := c.send(t, c.alice, msg)
		wire, err := crdt.Decode(ev.Encode())
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if n >= 17 && bytes.Contains(wire.Body, []byte("PLAINTEXT-MARKER-")) {
			t.Fatal("plaintext marker in the body")
		}
		if len(wire.Body) != PaddedLen(n)+SealOverhead {
			t.Fatalf("%d bytes: body %d, want bucket %d + %d", n, len(wire.Body), PaddedLen(n), SealOverhead)
		}
		got, err := c.read(wire)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: got %d bytes, %v", n, len(got), err)
		}
	}
	if _, err := c.key.Seal(rand.Reader, mustHeader(t, c), make([]byte, MaxPlaintext+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized plaintext: %v", err)
	}
}

func mustHeader(t testing.TB, c *chat) Header {
	h, err := DraftHeader(c.alice.id.User, c.alice.ID(), c.draft(nil))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A2: changing any bound envelope field makes the body fail to open.
func TestAADBinding(t *testing.T) {
	c := newChat(t)
	h := mustHeader(t, c)
	body, err := c.key.Seal(rand.Reader, h, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.key.Open(h, body); err != nil || string(got) != "hello" {
		t.Fatalf("round trip: %q %v", got, err)
	}
	other := crdt.IDOf([]byte("another event"))
	sk, empty := "alice", ""
	mutations := map[string]func(h *Header){
		"type":          func(h *Header) { h.Type = "room.name" },
		"state key":     func(h *Header) { h.StateKey = &sk },
		"empty skey":    func(h *Header) { h.StateKey = &empty },
		"user":          func(h *Header) { h.User = c.bob.id.User },
		"device":        func(h *Header) { h.Device = c.bob.ID() },
		"seq":           func(h *Header) { h.Seq++ },
		"self":          func(h *Header) { h.Self = other },
		"prev added":    func(h *Header) { h.Prev = append(h.Prev, other) },
		"prev replaced": func(h *Header) { h.Prev = []crdt.EventID{other} },
		"auth":          func(h *Header) { h.Auth = nil },
		"depth":         func(h *Header) { h.Depth = 100 },
		"ts":            func(h *Header) { h.TS = 3 },
	}
	for name, m := range mutations {
		g := h
		g.Prev = append([]crdt.EventID(nil), h.Prev...)
		m(&g)
		if _, err := c.key.Open(g, body); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s changed: %v", name, err)
		}
	}
	// Room and epoch are also the key's own context: another value is a
	// request for another key.
	g := h
	g.Room = other
	if _, err := c.key.Open(g, body); !errors.Is(err, ErrNoKey) {
		t.Errorf("room changed: %v", err)
	}
	g = h
	g.Epoch[0] ^= 1
	if _, err := c.key.Open(g, body); !errors.Is(err, ErrNoKey) {
		t.Errorf("epoch changed: %v", err)
	}
	// Prev and auth are sets: order and duplicates do not matter, as in the envelope.
	g = h
	g.Prev = []crdt.EventID{c.create.ID, c.create.ID}
	if _, err := c.key.Open(g, body); err != nil {
		t.Errorf("prev with a duplicate: %v", err)
	}
	// Any flipped byte fails.
	for _, at := range []int{0, 23, 24, len(body) - 1} {
		b := bytes.Clone(body)
		b[at] ^= 1
		if _, err := c.key.Open(h, b); !errors.Is(err, ErrDecrypt) {
			t.Errorf("flipped byte %d: %v", at, err)
		}
	}
	if _, err := c.key.Open(h, body[:SealOverhead-1]); !errors.Is(err, ErrDecrypt) {
		t.Errorf("short body: %v", err)
	}
}

// B14: the same ciphertext re-used in another author's event (lifted), or
// re-parented by its own author, does not open; replaying the same event
// is the same event (same ID).
func TestLiftedCiphertextFails(t *testing.T) {
	c := newChat(t)
	ev := c.send(t, c.alice, []byte("secret plan"))
	d := c.draft(ev.Body)
	lifted, err := crdt.Sign(c.bob.id, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.read(lifted); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("lifted into bob's event: %v", err)
	}
	d.Prev = append(d.Prev, crdt.IDOf([]byte("elsewhere")))
	reparented, err := crdt.Sign(c.alice.id, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.read(reparented); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("re-parented: %v", err)
	}
	again, err := crdt.Decode(ev.Encode())
	if err != nil || again.ID != ev.ID {
		t.Fatalf("replay is not the same event: %v", err)
	}
}

// A3: nonces are random 24-byte values: 10^5 seals give 10^5 distinct nonces.
func TestNonceUniqueness(t *testing.T) {
	c := newChat(t)
	h := mustHeader(t, c)
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	seen := make(map[[24]byte]bool, n)
	for range n {
		body, err := c.key.Seal(rand.Reader, h, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		nonce := [24]byte(body[:24])
		if seen[nonce] {
			t.Fatalf("nonce %x repeated", nonce)
		}
		seen[nonce] = true
	}
}

func TestPaddedLen(t *testing.T) {
	for n, want := range map[int]int{
		0: 256, 1: 256, 255: 256, 256: 512, 4095: 4096, 4096: 8192, 8191: 8192, 8192: 16384,
		32767: 32768, 32768: MaxPadded, MaxPlaintext: MaxPadded, MaxPlaintext + 1: -1, -1: -1,
	} {
		if got := PaddedLen(n); got != want {
			t.Errorf("PaddedLen(%d) = %d, want %d", n, got, want)
		}
	}
	// An event with the largest body fits crdt.MaxEventSize with room for a
	// large envelope.
	if room := crdt.MaxEventSize - MaxPadded - SealOverhead; room < 4000 {
		t.Errorf("only %d bytes left for the envelope", room)
	}
	for _, bad := range [][]byte{make([]byte, 256), append(bytes.Repeat([]byte{1}, 255), 1), make([]byte, 300)} {
		if _, err := unpad(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("unpad accepted %d bytes ending %x", len(bad), bad[len(bad)-1])
		}
	}
}

func TestDestroyedKey(t *testing.T) {
	c := newChat(t)
	h := mustHeader(t, c)
	body, _ := c.key.Seal(rand.Reader, h, []byte("x"))
	c.key.Destroy()
	if _, err := c.key.Open(h, body); !errors.Is(err, ErrNoKey) {
		t.Fatalf("open with destroyed key: %v", err)
	}
	if _, err := c.key.Seal(rand.Reader, h, []byte("x")); !errors.Is(err, ErrNoKey) {
		t.Fatalf("seal with destroyed key: %v", err)
	}
	if c.key.Secret() != nil || !bytes.Equal(c.key.secret[:], make([]byte, 32)) {
		t.Fatal("secret survives Destroy")
	}
}

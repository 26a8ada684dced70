package rooms

import (
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// TestMintWork: minted work meets the difficulty it was minted for, and is
// bound to its room and user (for another room or user it is, with
// overwhelming likelihood, far weaker).
func TestMintWork(t *testing.T) {
	room := crdt.IDOf([]byte("room"))
	var u, v crdt.UserID
	u[0], v[0] = 1, 2
	for _, d := range []int{0, 1, 8, 12} {
		w := MintWork(room, u, d, 7, nil)
		if got := WorkBits(room, u, w); got < d {
			t.Fatalf("d=%d: minted work has %d bits", d, got)
		}
	}
	w := MintWork(room, u, 16, 0, nil)
	if WorkBits(room, v, w) >= 16 && WorkBits(crdt.IDOf([]byte("other")), u, w) >= 16 {
		t.Fatal("work is not bound to its room and user")
	}
	if MintWork(room, u, 64, 0, func() bool { return true }) != nil {
		t.Fatal("stop did not stop minting")
	}
	if len(w) > MaxWorkLen {
		t.Fatalf("work of %d bytes", len(w))
	}
}

// BenchmarkMintJoinWork is the cost to an honest joiner of a room that
// asks for DefaultJoinWork bits (docs/limits.md): the mean over many
// rooms, as the number of tries is geometric.
func BenchmarkMintJoinWork(b *testing.B) {
	var u crdt.UserID
	u[0] = 1
	for i := 0; b.Loop(); i++ {
		room := crdt.IDOf([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		MintWork(room, u, DefaultJoinWork, 0, nil)
	}
}

// BenchmarkVerifyJoinWork is what a relay or the rules spend on one join's
// proof.
func BenchmarkVerifyJoinWork(b *testing.B) {
	room := crdt.IDOf([]byte("room"))
	var u crdt.UserID
	w := MintWork(room, u, 8, 0, nil)
	for b.Loop() {
		WorkBits(room, u, w)
	}
}

// FuzzLimitsBodies: room.limits and member bodies (with work) from any
// bytes either parse within their bounds or are malformed, and the
// relay's join check never fails on them.
func FuzzLimitsBodies(f *testing.F) {
	f.Add(Encode(LimitsBody{Messages: 3, Bytes: 4096, JoinWork: 20}), true)
	f.Add(Encode(MemberBody{Membership: Join, Work: []byte{1, 2, 3}}), false)
	f.Add([]byte{0xa1, 0x64, 'w', 'o', 'r', 'k', 0x40}, false)
	f.Add([]byte{0xff}, true)
	empty := ""
	var u crdt.UserID
	u[0] = 7
	skey := u.String()
	g := &Guard{Work: 4, Members: map[crdt.UserID]string{}}
	f.Fuzz(func(t *testing.T, body []byte, limits bool) {
		if limits {
			lb, err := parseLimits(&empty, body)
			if err == nil && (lb.Messages < 0 || lb.Messages > MaxLimitMessages || lb.Bytes < 0 || lb.Bytes > MaxLimitBytes || lb.JoinWork < 0 || lb.JoinWork > MaxJoinWork) {
				t.Fatalf("out of range limits accepted: %+v", lb)
			}
			return
		}
		p, err := parseBody(TypeMember, &skey, body)
		if err == nil && len(p.member.Work) > MaxWorkLen {
			t.Fatalf("work of %d bytes accepted", len(p.member.Work))
		}
		g.JoinRefusal(&crdt.Event{Type: TypeMember, StateKey: &skey, User: u, Room: crdt.IDOf([]byte("r")), Body: body})
	})
}

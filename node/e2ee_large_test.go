package node

import (
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// A kick in a room of more member devices than one 64 KiB event holds wraps
// (about 50): the kick's rotation is a key event, which may be up to
// crdt.MaxKeyEventSize, so the kicked member loses access here too.
func TestE2EEKickInLargeRoom(t *testing.T) {
	const n = 60
	b := newBus(t, 1, n)
	members := make([]int, 0, n-1)
	for i := 1; i < n; i++ {
		members = append(members, i)
	}
	room, id := b.newRoom(rooms.HistoryJoined, members...)
	b.ok2(b.engines[0].Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(n - 1)}))
	b.drain()
	largest := 0
	b.stores[0].Scan(id, 0, func(st crdt.Stored) bool {
		if st.Event.Type == rooms.TypeMember {
			largest = max(largest, st.Event.Size())
		}
		return true
	})
	if largest <= crdt.MaxEventSize {
		t.Fatalf("the kick's member event has %d bytes; the test needs one above %d", largest, crdt.MaxEventSize)
	}
	post := marker(1, "after-large-kick")
	b.send(1, room, post)
	b.drain()
	if shown, _ := b.texts(2, room); len(shown) == 0 || shown[len(shown)-1] != post {
		t.Fatalf("a remaining member shows %v, want the post-kick message last", shown)
	}
	if b.persisted(n-1, post) {
		t.Fatal("the kicked member persisted the post-kick plaintext")
	}
	if _, undec := b.texts(n-1, room); undec == 0 {
		t.Fatal("the kicked member did not even receive the post-kick ciphertext")
	}
}

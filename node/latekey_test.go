package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// lateKeyHealed drains the bus until engine d shows text (key healing may
// wait for a jittered timer), then checks that it decrypted it late.
func (b *bus) lateKeyHealed(t *testing.T, room string, id crdt.RoomID, d int, text string) {
	t.Helper()
	b.sync(0, id)
	eventually(t, 60*time.Second, fmt.Sprintf("seed %d: the late message shows on the new device", b.seed), func() (bool, string) {
		b.drain()
		shown, undec := b.texts(d, room)
		return slices.Contains(shown, text), fmt.Sprintf("shown %q, %d undecrypted, %d forwards", shown, undec, b.count(d, id, rooms.TypeKeyFwd))
	})
}

// TestLateKeyMessageAppears: a message sealed before the sender's node
// knew the reader's new device (issue 11) shows on that device once key
// healing forwards the epoch: in its history, in its watch stream (an
// item for the message, now decrypted, after the one that showed it
// sealed), and in its search.
func TestLateKeyMessageAppears(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		b := newBus(t, seed, 3)
		text := fmt.Sprintf("late zebrafish %d", seed)
		room, id := b.newRoom(rooms.HistoryShared, 1, 2)
		// The new device's events reach user 0 only after the message, and
		// key forwards reach the new device only after the message.
		d := b.device(1)
		dev := b.idents[d].Device.Public()
		b.hold = func(q delivery) bool { return q.to == 0 && q.ev.Device == dev }
		b.join(d, room)
		b.hold = func(q delivery) bool {
			return q.to == 0 && q.ev.Device == dev || q.to == d && q.ev.Type == rooms.TypeKeyFwd
		}
		ch, stop, err := b.engines[d].Watch(b.ctx, room)
		b.ok(err)
		b.ok2(b.engines[0].Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(2)})) // carries the next epoch
		b.drain()
		ev := b.send(0, room, text)
		b.drain()
		if shown, undec := b.texts(d, room); slices.Contains(shown, text) || undec == 0 {
			t.Fatalf("seed %d: the new device read the message before its key came (shown %q, %d undecrypted)", seed, shown, undec)
		}
		if ids, _ := b.searchIDs(d, api.SearchReq{Room: room, Query: "zebrafish"}); len(ids) != 0 {
			t.Fatalf("seed %d: found before decryption: %v", seed, ids)
		}
		b.mu.Lock()
		b.hold = nil
		b.queue, b.held = append(b.queue, b.held...), nil
		b.mu.Unlock()
		b.lateKeyHealed(t, room, id, d, text)

		var sealed, opened bool
		for len(ch) > 0 {
			it := <-ch
			if it.Event == nil || it.Event.ID != ev {
				continue
			}
			if it.Event.Decrypted && it.Event.Body == text {
				opened = sealed
			} else if !it.Event.Decrypted {
				sealed = true
			}
		}
		stop()
		if !sealed || !opened {
			t.Fatalf("seed %d: watch stream of the new device: sealed item %v, then decrypted item %v", seed, sealed, opened)
		}
		if ids, _ := b.searchIDs(d, api.SearchReq{Room: room, Query: "zebrafish"}); !slices.Equal(ids, []string{ev}) {
			t.Fatalf("seed %d: search after the late key: %v, want [%s]", seed, ids, ev)
		}
	}
}

package node

import (
	"context"
	"errors"
	"time"

	"github.com/parley-p2p/parley/crdt"
)

// Orphans expire by age as well as by budget (docs/protocol.md §1.4): an
// event whose ancestors have not come within orphanTTL is dropped, so a
// peer cannot pin memory with events that never resolve, however slowly it
// sends them. The engine reads the clock only through Tick's argument.

const (
	orphanTTL  = 10 * time.Minute // how long an orphan may wait
	expiryTick = time.Minute      // how often the engine looks; an orphan goes after orphanTTL to orphanTTL+expiryTick
)

// orphanExpiry is the bookkeeping of expiry; owned by the engine goroutine.
type orphanExpiry struct {
	marks   map[crdt.RoomID][]arrivalMark // per room, oldest first
	expired map[crdt.RoomID]int           // orphans expired so far, per room
}

// arrivalMark notes a log's arrival counter at a time.
type arrivalMark struct {
	at time.Time
	n  uint64
}

// expireOrphans notes each room's arrival counter at now and drops the
// orphans that had arrived by a mark at least orphanTTL old. It returns how
// many it dropped.
func (e *Engine) expireOrphans(now time.Time) int {
	x := &e.expiry
	if x.marks == nil {
		x.marks, x.expired = map[crdt.RoomID][]arrivalMark{}, map[crdt.RoomID]int{}
	}
	total := 0
	for id, rc := range e.rooms {
		marks := append(x.marks[id], arrivalMark{now, rc.log.Arrivals()})
		cut := -1
		for i, m := range marks {
			if !m.at.After(now.Add(-orphanTTL)) {
				cut = i
			}
		}
		if cut >= 0 {
			if n := rc.log.ExpireOrphans(marks[cut].n); n > 0 {
				x.expired[id] += n
				total += n
				rc.clampOrphans()
				e.log.Debug("orphans expired", "room", id, "n", n)
			}
			marks = marks[cut+1:]
		}
		x.marks[id] = marks
	}
	for id := range x.marks {
		if e.rooms[id] == nil {
			delete(x.marks, id)
		}
	}
	return total
}

// clampOrphans caps each peer's orphan count at what still waits.
func (rc *roomCtl) clampOrphans() {
	n := rc.log.Pending()
	for p, c := range rc.orphansBy {
		if c = min(c, n); c == 0 {
			delete(rc.orphansBy, p)
		} else {
			rc.orphansBy[p] = c
		}
	}
}

// Tick lets time pass for the engine: orphans older than orphanTTL expire.
// It returns how many did.
func (e *Engine) Tick(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := e.do(ctx, func() error { n = e.expireOrphans(now); return nil })
	return n, err
}

// OrphansExpired counts a room's orphans that expired (not evicted by the budget).
func (e *Engine) OrphansExpired(ctx context.Context, room crdt.RoomID) (int, error) {
	var n int
	err := e.do(ctx, func() error { n = e.expiry.expired[room]; return nil })
	return n, err
}

// ServeExpiry ticks the engine every expiryTick with its clock.
func (e *Engine) ServeExpiry(ctx context.Context) error {
	t := time.NewTicker(expiryTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := e.Tick(ctx, e.now()); errors.Is(err, ErrClosed) {
				return nil
			}
		}
	}
}

package node

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
)

// Device linking (docs/protocol.md §8, docs/design.md §5.4 d). The
// protocol (the code, the handshake, the linking side's state) is
// node/p2p/link.go; the node gives it the engine (p2p.LinkEngine,
// peering.go), turns its errors into the API's, and makes a newly linked
// device follow its user's rooms (followLinked, link_home.go).

// newLinkCode issues a code on l (`parley device link`), its refusals as
// API errors.
func newLinkCode(l *p2p.Linker, ttl time.Duration) (*p2p.LinkCode, error) {
	c, err := l.NewCode(ttl)
	switch {
	case errors.Is(err, p2p.ErrNoMaster):
		return nil, &api.Error{Kind: api.KindPermission, Msg: linkText(err), Err: err}
	case errors.Is(err, p2p.ErrLinkNoAddress):
		return nil, &api.Error{Kind: api.KindUnavailable, Msg: linkText(err), Err: err}
	case errors.Is(err, p2p.ErrLinkCodesWaiting):
		return nil, errorf(api.KindInvalid, "%d link codes are already waiting; use one or let them expire (%s)", p2p.MaxLinkPending, p2p.DefaultLinkTTL)
	}
	return c, err
}

// linkText is a link error as users read it: without the package's prefix.
func linkText(err error) string {
	return strings.ReplaceAll(strings.ReplaceAll(err.Error(), "p2p: ", ""), "node: ", "")
}

// followLinked makes a newly linked device take part in its user's rooms:
// it keeps each room, waits until the room is synced (its user joined, no
// gap), and announces the device there; a sibling then forwards the live
// epochs (keys.go, healing), so in a `shared` room the device reads the
// history. done is called for each room announced. It returns when every
// room is done or ctx ends.
func followLinked(ctx context.Context, e *Engine, rooms []crdt.RoomID, poll time.Duration, done func(crdt.RoomID)) error {
	left := map[crdt.RoomID]bool{}
	for _, r := range rooms {
		if _, err := e.TrackRoom(ctx, r.String()); err != nil {
			return err
		}
		left[r] = true
	}
	for len(left) > 0 {
		for r := range left {
			ok, gone, err := e.linkedReady(ctx, r)
			if err != nil {
				return err
			}
			switch {
			case gone:
				e.log.Info("linked device: the user left the room meanwhile", "room", r)
			case !ok:
				continue
			default:
				if err := e.AnnounceLinked(ctx, r); err != nil {
					e.log.Warn("announce linked device", "room", r, "err", err)
					continue
				}
			}
			delete(left, r)
			if done != nil {
				done(r)
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll): // polling interval
		}
	}
	return nil
}

package node

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/node/wire"
	"github.com/parley-p2p/parley/rooms"
)

// Pending invites are kept in the node's local store (never synced), one
// key per room, so that taking one writes one small value instead of
// rewriting a file of all of them. Receiving them is bounded three ways
// (docs/protocol.md "Invites"):
//
//   - per delivering peer and per inviting user, token buckets
//     (invitePeerRate, inviteUserRate) on the invites addressed to this
//     user, in the invite protocol's handler (node/p2p/invite.go);
//   - at most MaxPendingInvites are kept: a new one displaces the oldest
//     invite of no higher priority (an invite from a contact, a user who
//     shares a joined room with this user, outranks one from a stranger),
//     and is refused when every pending invite outranks it;
//   - a room name in an invite is cut to MaxRoomName bytes.
//
// Invites from strangers (users who share no joined room with this user
// and whom it has not verified) go to a box of requests apart from the
// inbox: at most MaxInviteRequests are kept (a new one displaces the
// oldest request), and one stranger may file requestUserBurst of them,
// then one per 1/requestUserRate; the rest are dropped and counted
// (api.InvitesResp.RequestsDropped).

// MaxPendingInvites is how many pending invites a node keeps.
const MaxPendingInvites = 256

// MaxInviteRequests is how many invites from strangers a node keeps.
const MaxInviteRequests = 64

// Invite requests one stranger may file: a burst, then one per 10 minutes.
const (
	requestUserRate  = rate.Limit(1.0 / 600)
	requestUserBurst = 3
)

// Invite rates, per second with a burst: invitePeer* for invites to this
// user delivered by one peer, inviteUser* for invites from one user, and
// inviteFrame* for every invite frame a peer sends (most are for other
// users and refused after a signature check).
const (
	invitePeerRate   = rate.Limit(0.5)
	invitePeerBurst  = 20
	inviteUserRate   = rate.Limit(0.1)
	inviteUserBurst  = 5
	inviteFrameRate  = rate.Limit(20)
	inviteFrameBurst = 200
)

// inviteLimits are the invite rates as the invite protocol takes them.
var inviteLimits = p2p.InviteLimits{
	Frame: inviteFrameRate, FrameBurst: inviteFrameBurst,
	Peer: invitePeerRate, PeerBurst: invitePeerBurst,
	User: inviteUserRate, UserBurst: inviteUserBurst,
}

// inviteKeyPrefix is the local store prefix of pending invites: "i/" room.
const inviteKeyPrefix = "i/"

func inviteKey(room string) []byte { return append([]byte(inviteKeyPrefix), room...) }

type pendingInvite struct {
	Room    string `json:"room"`
	Inviter string `json:"inviter"`
	Name    string `json:"name"`
	DM      bool   `json:"dm,omitempty"`
	Contact bool   `json:"contact,omitempty"` // the inviter shared a joined room with this user (or was verified by it) when it came; else the invite is a request
	Seq     uint64 `json:"seq,omitempty"`     // arrival order
	// Via are the inviter's node's addresses when the invite came (relay
	// addresses included), each ending in /p2p/PEER: joining uses them
	// when no --via is given (docs/protocol.md "Invites").
	Via []string `json:"via,omitempty"`
}

// inviteBook is the set of pending invites; the engine goroutine owns it.
// It is engine state: its changes are tentative in memory and go to the
// driver as Ready.Book writes (InviteWrite), which it performs after the
// step's commits; a write that fails takes its change back (inviteFailed).
type inviteBook struct {
	byID map[string]*pendingInvite
	seq  uint64

	strangers *wire.LimiterSet[crdt.UserID] // requests per stranger
	dropped   uint64                        // requests over a stranger's rate, since start
}

func newInviteBook() *inviteBook {
	return &inviteBook{byID: map[string]*pendingInvite{},
		strangers: wire.NewLimiterSet[crdt.UserID](requestUserRate, requestUserBurst)}
}

// load takes in one pending invite as the local store holds it.
func (b *inviteBook) load(v []byte) {
	var p pendingInvite
	if json.Unmarshal(v, &p) == nil && p.Room != "" {
		b.byID[p.Room] = &p
		b.seq = max(b.seq, p.Seq)
	}
}

// add keeps p, displacing the oldest pending invite of no higher priority
// when the book is full, and returns the writes that make it so: p's
// first, then the removals of the invites it displaced (so that a failed
// write of p displaces nothing). It reports false when p was refused.
func (b *inviteBook) add(p pendingInvite) ([]InviteWrite, bool, error) {
	if _, ok := b.byID[p.Room]; ok {
		return nil, true, nil
	}
	p.Name = clip(p.Name, MaxRoomName)
	var victims []*pendingInvite
	if !p.Contact {
		var oldest *pendingInvite
		n := 0
		for _, q := range b.byID {
			if !q.Contact {
				n++
				if oldest == nil || q.Seq < oldest.Seq {
					oldest = q
				}
			}
		}
		if n >= MaxInviteRequests {
			victims = append(victims, oldest)
		}
	}
	if len(b.byID)-len(victims) >= MaxPendingInvites {
		var victim *pendingInvite
		for _, q := range b.byID {
			if (q.Contact && !p.Contact) || slices.Contains(victims, q) {
				continue
			}
			if victim == nil || q.Seq < victim.Seq {
				victim = q
			}
		}
		if victim == nil {
			return nil, false, nil
		}
		victims = append(victims, victim)
	}
	seq := b.seq
	p.Seq = seq + 1
	v, err := json.Marshal(p)
	if err != nil {
		return nil, false, fmt.Errorf("encode invite: %w", err)
	}
	b.seq = p.Seq
	b.byID[p.Room] = &p
	ws := []InviteWrite{{Room: p.Room, Value: v, seq: seq}}
	for _, q := range victims {
		w, _ := b.remove(q.Room)
		w.quiet = true // p is kept: the book holds one more until the next add
		ws = append(ws, w)
	}
	return ws, true, nil
}

// admitRequest takes a token from the stranger u's bucket of requests; a
// request over it is counted and dropped. A request whose write then
// fails has spent its token all the same, as a refused one does.
func (b *inviteBook) admitRequest(u crdt.UserID) bool {
	if b.strangers.Allow(u) {
		return true
	}
	b.dropped++
	return false
}

// remove forgets the invite to room and returns the write that deletes it;
// false when there is none.
func (b *inviteBook) remove(room string) (InviteWrite, bool) {
	p, ok := b.byID[room]
	if !ok {
		return InviteWrite{}, false
	}
	delete(b.byID, room)
	return InviteWrite{Room: room, Delete: true, prev: p, seq: b.seq}, true
}

// undo takes a write back: the book's entry and arrival counter are as
// before it.
func (b *inviteBook) undo(w InviteWrite) {
	if w.prev != nil {
		b.byID[w.prev.Room] = w.prev
	} else {
		delete(b.byID, w.Room)
	}
	b.seq = w.seq
}

// addInvite keeps p in the invite book (add) and asks the driver to write
// it (Ready.Book).
func (e *Engine) addInvite(p pendingInvite) (bool, error) {
	ws, ok, err := e.inv.add(p)
	e.out.Book = append(e.out.Book, ws...)
	return ok, err
}

// dropInvite forgets the invite to room, if any, and asks the driver to
// delete it; quiet: a failure of the delete is logged, not returned.
func (e *Engine) dropInvite(room crdt.RoomID, quiet bool) {
	if w, ok := e.inv.remove(room.String()); ok {
		w.quiet = quiet
		e.out.Book = append(e.out.Book, w)
	}
}

// joinedInvite drops the invite to a room once this user's join to it is
// stored (advance): by this device's `room join` or by another device of
// the user. Until then, and when the delete fails, the invite stays (the
// lists leave out invites to joined rooms); a failed delete is tried
// again at the room's next commit.
func (e *Engine) joinedInvite(room crdt.RoomID, rc *roomCtl) {
	if len(e.inv.byID) == 0 || e.inv.byID[room.String()] == nil || rc.room == nil || rc.room.MembershipOf(e.ident.User) != rooms.Join {
		return
	}
	e.dropInvite(room, true)
}

// inviteFailed goes back after the driver could not write ws[0] (and so
// wrote none of the rest): the book is as before those writes, newest
// first, and the watch items of invites it no longer holds are dropped.
// It returns err unless every write was quiet.
func (e *Engine) inviteFailed(ws []InviteWrite, err error) error {
	loud := false
	for i := len(ws) - 1; i >= 0; i-- {
		w := ws[i]
		e.inv.undo(w)
		loud = loud || !w.quiet
		if !w.Delete {
			e.out.Watch = slices.DeleteFunc(e.out.Watch, func(it WatchOut) bool { return it.Item.Kind == "invite" && it.Item.Room == w.Room })
		}
	}
	if !loud {
		e.log.Warn("invite book write", "err", err)
		return nil
	}
	return err
}

// list returns the pending invites in arrival order.
func (b *inviteBook) list() []*pendingInvite {
	out := make([]*pendingInvite, 0, len(b.byID))
	for _, p := range b.byID {
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y *pendingInvite) int { return cmp.Compare(x.Seq, y.Seq) })
	return out
}

// clip cuts s to at most n bytes at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

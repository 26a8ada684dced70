package node

import (
	"cmp"
	"encoding/json"
	"slices"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/node/wire"
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
type inviteBook struct {
	local LocalStore
	byID  map[string]*pendingInvite
	seq   uint64

	strangers *wire.LimiterSet[crdt.UserID] // requests per stranger
	dropped   uint64                        // requests over a stranger's rate, since start
}

// loadInvites reads the pending invites from local and moves those of an
// older prefs.json (legacy) into it.
func loadInvites(local LocalStore, legacy []pendingInvite) (*inviteBook, error) {
	b := &inviteBook{local: local, byID: map[string]*pendingInvite{},
		strangers: wire.NewLimiterSet[crdt.UserID](requestUserRate, requestUserBurst)}
	err := local.ScanLocal([]byte(inviteKeyPrefix), func(k, v []byte) bool {
		var p pendingInvite
		if json.Unmarshal(v, &p) == nil && p.Room != "" {
			b.byID[p.Room] = &p
			b.seq = max(b.seq, p.Seq)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	for _, p := range legacy {
		if _, ok := b.byID[p.Room]; !ok {
			if _, err := b.add(p); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// add keeps p, displacing the oldest pending invite of no higher priority
// when the book is full. It reports false when p was refused.
func (b *inviteBook) add(p pendingInvite) (bool, error) {
	if _, ok := b.byID[p.Room]; ok {
		return true, nil
	}
	p.Name = clip(p.Name, MaxRoomName)
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
			if err := b.remove(oldest.Room); err != nil {
				return false, err
			}
		}
	}
	if len(b.byID) >= MaxPendingInvites {
		var victim *pendingInvite
		for _, q := range b.byID {
			if q.Contact && !p.Contact {
				continue
			}
			if victim == nil || q.Seq < victim.Seq {
				victim = q
			}
		}
		if victim == nil {
			return false, nil
		}
		if err := b.remove(victim.Room); err != nil {
			return false, err
		}
	}
	b.seq++
	p.Seq = b.seq
	v, err := json.Marshal(p)
	if err != nil {
		return false, err
	}
	if err := b.local.PutLocal(inviteKey(p.Room), v); err != nil {
		return false, err
	}
	b.byID[p.Room] = &p
	return true, nil
}

// admitRequest takes a token from the stranger u's bucket of requests; a
// request over it is counted and dropped.
func (b *inviteBook) admitRequest(u crdt.UserID) bool {
	if b.strangers.Allow(u) {
		return true
	}
	b.dropped++
	return false
}

// remove forgets the invite to room, if any.
func (b *inviteBook) remove(room string) error {
	if _, ok := b.byID[room]; !ok {
		return nil
	}
	if err := b.local.DeleteLocal(inviteKey(room)); err != nil {
		return err
	}
	delete(b.byID, room)
	return nil
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

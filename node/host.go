package node

import (
	"context"
	"slices"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
)

// Blind hosting (docs/design.md §6): a node keeps and serves a room it is not a
// member of. For an encrypted room it holds ciphertext only: no wrap names
// its device, so it never holds an epoch secret and decrypts nothing.
// Members and other hosts pull an encrypted room from any node that names
// it (Engine.MayServe).

// KeepBlind starts keeping a room without joining it: blind hosting
// (`parley room host`; not libp2p's host).
func (e *Engine) KeepBlind(ctx context.Context, s string) (crdt.RoomID, error) {
	return e.TrackRoom(ctx, s)
}

// DropBlind stops keeping a blindly hosted room (`parley room unhost`): the engine
// drops it, so it is neither synced nor served, and does not load it again
// after a restart. The events already stored stay in the store; hosted or
// joined again, the room is loaded from them (TrackRoom) and only what is
// new is pulled. A room this user is a member of cannot be unhosted (leave
// it first).
func (e *Engine) DropBlind(ctx context.Context, req api.RoomReq) (api.RoomResp, error) {
	var resp api.RoomResp
	err := e.do(ctx, func() error {
		id, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		if rc.room != nil {
			if m := rc.room.MembershipOf(e.ident.User); m != "" && m != "leave" {
				return errorf(api.KindInvalid, "this user is in room %s (membership %s): leave it instead", id, m)
			}
		}
		resp.Room = id.String()
		return e.dropRoom(id, rc)
	})
	return resp, err
}

// dropRoom stops keeping a room: the engine forgets it and does not load
// it again after a restart (its stored events stay until it is hosted or
// joined again).
func (e *Engine) dropRoom(id crdt.RoomID, rc *roomCtl) error {
	healAt := rc.keys.healAt
	rc.keys.healAt = time.Time{} // a pending heal timer finds no room and does nothing
	delete(e.rooms, id)
	if !slices.Contains(e.prefs.Unhosted, id.String()) {
		e.prefs.Unhosted = append(e.prefs.Unhosted, id.String())
	}
	e.savePrefs(func() { // not unhosted after all: kept as before
		e.rooms[id] = rc
		rc.keys.healAt = healAt
	})
	return nil
}

// Abandon drops a room this node started keeping for a join that failed,
// unless this user has ever been in it (joined, invited, left): a failed
// join leaves no room behind.
func (e *Engine) Abandon(ctx context.Context, id crdt.RoomID) error {
	return e.do(ctx, func() error {
		rc := e.rooms[id]
		if rc == nil || (rc.room != nil && rc.room.MembershipOf(e.ident.User) != "") {
			return nil
		}
		return e.dropRoom(id, rc)
	})
}

// HasRoom reports whether this node keeps a room.
func (e *Engine) HasRoom(ctx context.Context, id crdt.RoomID) (bool, error) {
	var ok bool
	err := e.do(ctx, func() error {
		ok = e.rooms[id] != nil
		return nil
	})
	return ok, err
}

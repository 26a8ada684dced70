package node

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// Devices and verification (docs/design.md §5.1).
//
// Verification compares users' master keys: a user ID is the master
// public key, so the safety number and the SAS emoji of two users are a
// function of their two IDs (e2ee.SafetyNumber, e2ee.SAS) and both sides
// print the same. `verify USER --confirm` records the user in prefs with
// the display name it showed then.
//
// A changed master key. In Parley a user ID is its master key, so a user
// whose master key changes becomes another user: nothing "changes" under
// the old ID, and a new key shows up as a new ID. What a person notices is
// a name, so the meaningful signal is that name moving to another key.
// This node raises a warning when
//
//   - master_key_changed: a room member shows the display name of a user
//     this user verified, under another user ID that is not itself
//     verified (a reinstalled identity, or an impersonator); and
//   - device_moved: a device announced in one room under one user's master
//     key is announced in another room under another master key (device
//     certificates bind a device key to one master key, so the same device
//     key certified by two master keys means one of them is not who it was).
//
// Warnings are computed from the rooms' resolved state and prefs, so
// `room info` always shows the current ones; `watch` streams each once as
// it arises (warnAfter).

// verifiedUser is a user whose master key this user confirmed.
type verifiedUser struct {
	User string `json:"user"`
	Name string `json:"name,omitempty"` // their display name when verified
}

func (p *prefs) verified(u crdt.UserID) bool {
	s := u.String()
	return slices.ContainsFunc(p.Verified, func(v verifiedUser) bool { return v.User == s })
}

// Verify returns the safety number and SAS emoji of this user and req.User;
// with Confirm it records req.User as verified.
func (e *Engine) Verify(ctx context.Context, req api.VerifyReq) (api.VerifyResp, error) {
	u, err := parseUser(req.User)
	if err != nil {
		return api.VerifyResp{}, err
	}
	if u == e.ident.User {
		return api.VerifyResp{}, errorf(api.KindInvalid, "%s is this user: verify another user", u)
	}
	resp := api.VerifyResp{User: u.String()}
	err = e.do(ctx, func() error {
		if req.Confirm && !e.prefs.verified(u) {
			name := e.profileOf(u).DisplayName
			e.prefs.Verified = append(e.prefs.Verified, verifiedUser{User: u.String(), Name: name})
			e.savePrefs(nil)
		}
		resp.Verified = e.prefs.verified(u)
		return nil
	})
	if err != nil || req.Confirm {
		return resp, err
	}
	resp.SafetyNumber = e2ee.FormatSafetyNumber(e2ee.SafetyNumber(e.ident.User, u))
	for _, em := range e2ee.SAS(e.ident.User, u) {
		resp.Emoji = append(resp.Emoji, em.Char)
		resp.EmojiNames = append(resp.EmojiNames, em.Name)
	}
	return resp, nil
}

// deviceOwners maps every announced member device of every room to its
// user (the first seen, rooms in ID order) and lists the devices announced
// under more than one user. Engine goroutine.
func (e *Engine) deviceOwners() (owner map[crdt.DeviceID]crdt.UserID, moved map[crdt.DeviceID][]crdt.UserID) {
	owner = map[crdt.DeviceID]crdt.UserID{}
	moved = map[crdt.DeviceID][]crdt.UserID{}
	for _, id := range e.sortedRooms() {
		r := e.rooms[id].room
		if r == nil || !r.Encrypted() {
			continue
		}
		for _, rec := range r.MemberDevices(nil) {
			_, u := r.DeviceOf(rec.Device)
			was, ok := owner[rec.Device]
			switch {
			case !ok:
				owner[rec.Device] = u
			case was != u && !slices.Contains(moved[rec.Device], u):
				moved[rec.Device] = append(moved[rec.Device], u)
			}
		}
	}
	return owner, moved
}

func (e *Engine) sortedRooms() []crdt.RoomID {
	ids := make([]crdt.RoomID, 0, len(e.rooms))
	for id := range e.rooms {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// warnings lists the security warnings about rc's members. Engine goroutine.
func (e *Engine) warnings(room crdt.RoomID, rc *roomCtl) []api.Warning {
	out := []api.Warning{}
	if rc.room == nil {
		return out
	}
	st := e.stateOf(rc)
	// master_key_changed: a verified user's name under another key.
	names := map[string]string{} // display name -> verified user
	for _, v := range e.prefs.Verified {
		if v.Name != "" {
			names[v.Name] = v.User
		}
	}
	for _, m := range st.Members {
		if m.Membership == rooms.Join && m.DisplayName != "" && e.prefs.verified(m.User) {
			names[m.DisplayName] = m.User.String()
		}
	}
	for _, m := range st.Members {
		if m.Membership != rooms.Join && m.Membership != rooms.Invite {
			continue
		}
		v, ok := names[m.DisplayName]
		if !ok || m.DisplayName == "" || v == m.User.String() || e.prefs.verified(m.User) || m.User == e.ident.User {
			continue
		}
		out = append(out, api.Warning{
			Kind: "master_key_changed", Room: room.String(), User: m.User.String(), Was: v,
			Message: fmt.Sprintf("WARNING: %s shows the name %q of verified user %s but has a different master key: it is not the user you verified (a new identity or an impersonator); compare safety numbers again (parley verify %s)", m.User, m.DisplayName, v, m.User),
		})
	}
	// device_moved: a device of this room's members known under another key.
	if rc.room.Encrypted() {
		owner, moved := e.deviceOwners()
		for _, rec := range rc.room.MemberDevices(nil) {
			_, u := rc.room.DeviceOf(rec.Device)
			others := moved[rec.Device]
			if first := owner[rec.Device]; first != u {
				others = append(others, first)
			}
			for _, w := range others {
				if w == u {
					continue
				}
				out = append(out, api.Warning{
					Kind: "device_moved", Room: room.String(), User: u.String(), Was: w.String(), Device: rec.Device.String(),
					Message: fmt.Sprintf("WARNING: device %s is certified by the master key of %s here and of %s elsewhere: one of them is not who it was", rec.Device, u, w),
				})
			}
		}
	}
	slices.SortFunc(out, func(a, b api.Warning) int {
		return strings.Compare(a.Kind+a.User+a.Was+a.Device, b.Kind+b.User+b.Was+b.Device)
	})
	return out
}

// warnAfter streams the warnings an accepted event raised to the watchers,
// each once per node run. Engine goroutine.
func (e *Engine) warnAfter(room crdt.RoomID, rc *roomCtl, ev *crdt.Event) {
	if len(e.watchers) == 0 {
		return
	}
	switch ev.Type {
	case rooms.TypeMember, rooms.TypeProfile, rooms.TypeDevice:
	default:
		return
	}
	for _, w := range e.warnings(room, rc) {
		key := w.Kind + "\x00" + w.Room + "\x00" + w.User + "\x00" + w.Was + "\x00" + w.Device
		if e.warned == nil {
			e.warned = map[string]bool{}
		}
		if e.warned[key] {
			continue
		}
		e.warned[key] = true
		for wt := range e.watchers {
			if wt.room == "" || wt.room == room {
				wt.put(api.WatchItem{Kind: "warning", Room: room.String(), Warning: &w})
			}
		}
	}
}

// DeviceList lists a user's devices (default: this user): the devices
// announced in the encrypted rooms this node keeps, and for this user this
// node's own device.
func (e *Engine) DeviceList(ctx context.Context, req api.UserReq) (api.DeviceListResp, error) {
	u := e.ident.User
	if req.User != "" {
		var err error
		if u, err = parseUser(req.User); err != nil {
			return api.DeviceListResp{}, err
		}
	}
	resp := api.DeviceListResp{User: u.String(), Devices: []api.DeviceInfo{}}
	err := e.do(ctx, func() error {
		byDev := map[crdt.DeviceID]*api.DeviceInfo{}
		verified := u == e.ident.User || e.prefs.verified(u)
		get := func(d crdt.DeviceID) *api.DeviceInfo {
			if di := byDev[d]; di != nil {
				return di
			}
			di := &api.DeviceInfo{Device: d.String(), Current: d == e.ident.Device.Public(), Verified: verified, Rooms: []string{}}
			if di.Current {
				di.Name = "this device"
			}
			byDev[d] = di
			return di
		}
		if u == e.ident.User {
			get(e.ident.Device.Public())
		}
		for _, id := range e.sortedRooms() {
			r := e.rooms[id].room
			if r == nil || !r.Encrypted() {
				continue
			}
			for _, rec := range r.MemberDevices(nil) {
				if _, owner := r.DeviceOf(rec.Device); owner == u {
					di := get(rec.Device)
					di.Rooms = append(di.Rooms, id.String())
				}
			}
		}
		for _, di := range byDev {
			resp.Devices = append(resp.Devices, *di)
		}
		slices.SortFunc(resp.Devices, func(a, b api.DeviceInfo) int {
			if a.Current != b.Current {
				if a.Current {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Device, b.Device)
		})
		return nil
	})
	return resp, err
}

// Revoke removes another device of this user from every encrypted room
// (RevokeDevice), checking the name first.
func (e *Engine) Revoke(ctx context.Context, req api.DeviceReq) (api.DeviceRevokeResp, error) {
	d, err := crdt.ParseKey(req.Device)
	if err != nil {
		return api.DeviceRevokeResp{}, errorf(api.KindInvalid, "%q is not a device ID", req.Device)
	}
	evs, err := e.RevokeDevice(ctx, d)
	if err != nil {
		return api.DeviceRevokeResp{}, err
	}
	if len(evs) == 0 {
		return api.DeviceRevokeResp{}, codef(api.KindNotFound, api.CodeUnknownDevice, "device %s is not a member device of any encrypted room this user is in", d)
	}
	return api.DeviceRevokeResp{Device: d.String(), Events: evs}, nil
}

// joinedRooms lists the rooms this user is joined in. Engine goroutine.
func (e *Engine) joinedRooms() []crdt.RoomID {
	var out []crdt.RoomID
	for _, id := range e.sortedRooms() {
		if r := e.rooms[id].room; r != nil && r.MembershipOf(e.ident.User) == rooms.Join {
			out = append(out, id)
		}
	}
	return out
}

// linkedReady reports whether a room a newly linked device follows is
// synced far enough to announce the device: its state is held, the copy
// has no gap, and this user is joined in it. gone: this user has left or
// was removed (nothing to announce).
func (e *Engine) linkedReady(ctx context.Context, id crdt.RoomID) (ready, gone bool, err error) {
	err = e.do(ctx, func() error {
		rc := e.rooms[id]
		if rc == nil || rc.room == nil || rc.log.MissingCount() > 0 || rc.log.Pending() > 0 {
			return nil
		}
		// A copy without a gap may still be partial (a sync in progress),
		// so only a recorded departure counts as gone.
		switch rc.room.MembershipOf(e.ident.User) {
		case rooms.Join:
			ready = true
		case rooms.Leave, rooms.Ban:
			gone = true
		}
		return nil
	})
	return ready, gone, err
}

// AnnounceLinked announces this device in a room its user is joined in
// (the `device` event); a sibling device then forwards the live epochs.
func (e *Engine) AnnounceLinked(ctx context.Context, id crdt.RoomID) error {
	return e.do(ctx, func() error {
		rc := e.rooms[id]
		if rc == nil || rc.room == nil {
			return errorf(api.KindUnavailable, "room %s is not synced yet", id)
		}
		if rc.room.MembershipOf(e.ident.User) != rooms.Join {
			return errorf(api.KindPermission, "this user is not joined in room %s", id)
		}
		return e.announceDevice(id, rc, false)
	})
}

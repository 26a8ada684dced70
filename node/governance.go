package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// TypeBlob is a message-like event carrying a small binary blob (an avatar
// image) that state events reference by the blob event's ID: the avatar
// form before media avatars (avatars.go). Nodes still read it, and the
// engine still writes it for an avatar given as bytes when no media store
// is open (in-memory engines).
const TypeBlob = "blob"

// MaxBlob bounds a blob event's data.
const MaxBlob = 48 << 10

// BlobBody is the body of a blob event.
type BlobBody struct {
	Mime string `cbor:"mime"`
	Data []byte `cbor:"data"`
}

func parseUser(s string) (crdt.UserID, error) {
	u, err := crdt.ParseKey(s)
	if err != nil {
		return u, errorf(api.KindInvalid, "%q is not a user ID", s)
	}
	return u, nil
}

// Invite authors an invite of req.User and delivers it to the invitee's devices.
func (e *Engine) Invite(ctx context.Context, req api.RoomUserReq) (api.EventResp, error) {
	target, err := parseUser(req.User)
	if err != nil {
		return api.EventResp{}, err
	}
	if err := checkField("reason", req.Reason, MaxReason); err != nil {
		return api.EventResp{}, err
	}
	var resp api.EventResp
	err = e.do(ctx, func() error {
		id, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		create, err := e.store.Get(id)
		if err != nil {
			return err
		}
		ev, err := e.invite(id, rc, create.Event, target, req.Reason)
		if err != nil {
			return err
		}
		resp.Event = ev.ID.String()
		return nil
	})
	return resp, err
}

// invite authors an invite of target and asks the driver to deliver it
// with the room's create event.
func (e *Engine) invite(id crdt.RoomID, rc *roomCtl, create *crdt.Event, target crdt.UserID, reason string) (*crdt.Event, error) {
	key := target.String()
	ev, err := e.author(id, rc, rooms.TypeMember, &key, rooms.Encode(rooms.MemberBody{Membership: rooms.Invite, Reason: reason}))
	if err != nil {
		return nil, err
	}
	e.out.Invites = append(e.out.Invites, InviteOut{id, target, create, ev, e.stateOf(rc).Name})
	return ev, nil
}

// membershipOf authors a membership change of target in a room.
func (e *Engine) membershipOf(ctx context.Context, room string, target crdt.UserID, membership, reason string) (api.EventResp, error) {
	id, err := crdt.ParseID(room)
	if err != nil {
		return api.EventResp{}, errorf(api.KindInvalid, "%q is not a room ID", room)
	}
	if err := checkField("reason", reason, MaxReason); err != nil {
		return api.EventResp{}, err
	}
	r, err := e.SetMembership(ctx, id, target, membership, reason)
	return api.EventResp{Event: r.Event}, err
}

// Leave leaves a room. Leaving a room this user is no longer in (left,
// kicked) changes nothing and succeeds with no event; leaving a room this
// user was never in (a join that did not complete) stops keeping it.
func (e *Engine) Leave(ctx context.Context, req api.RoomReq) (api.EventResp, error) {
	id, err := crdt.ParseID(req.Room)
	if err != nil {
		return api.EventResp{}, errorf(api.KindInvalid, "%q is not a room ID", req.Room)
	}
	gone := false
	err = e.do(ctx, func() error {
		rc := e.rooms[id]
		if rc == nil {
			return nil
		}
		m := ""
		if rc.room != nil {
			m = rc.room.MembershipOf(e.ident.User)
		}
		switch m {
		case "": // never in it (a join that did not complete): stop keeping it
			gone = true
			return e.dropRoom(id, rc)
		case rooms.Leave:
			gone = true
		}
		return nil
	})
	if err != nil || gone {
		return api.EventResp{}, err
	}
	return e.membershipOf(ctx, req.Room, e.ident.User, rooms.Leave, "")
}

// Kick removes a member.
func (e *Engine) Kick(ctx context.Context, req api.RoomUserReq) (api.EventResp, error) {
	u, err := parseUser(req.User)
	if err != nil {
		return api.EventResp{}, err
	}
	return e.membershipOf(ctx, req.Room, u, rooms.Leave, req.Reason)
}

// Ban bans a user.
func (e *Engine) Ban(ctx context.Context, req api.RoomUserReq) (api.EventResp, error) {
	u, err := parseUser(req.User)
	if err != nil {
		return api.EventResp{}, err
	}
	return e.membershipOf(ctx, req.Room, u, rooms.Ban, req.Reason)
}

// Unban lifts a ban (the user's membership becomes leave).
func (e *Engine) Unban(ctx context.Context, req api.RoomUserReq) (api.EventResp, error) {
	u, err := parseUser(req.User)
	if err != nil {
		return api.EventResp{}, err
	}
	return e.membershipOf(ctx, req.Room, u, rooms.Leave, req.Reason)
}

// parseRole maps admin|moderator|member|N to a power level.
func parseRole(s string) (int64, error) {
	switch s {
	case "admin":
		return rooms.PowerAdmin, nil
	case "moderator":
		return rooms.PowerModerator, nil
	case "member":
		return rooms.PowerMember, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < -1000000 || n > 1000000 {
		return 0, errorf(api.KindInvalid, "role must be admin, moderator, member or a power level, not %q", s)
	}
	return n, nil
}

// Role changes a member's power level with a new power event.
func (e *Engine) Role(ctx context.Context, req api.RoleReq) (api.EventResp, error) {
	u, err := parseUser(req.User)
	if err != nil {
		return api.EventResp{}, err
	}
	level, err := parseRole(req.Role)
	if err != nil {
		return api.EventResp{}, err
	}
	var resp api.EventResp
	err = e.do(ctx, func() error {
		id, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		if rc.room == nil {
			return errorf(api.KindUnavailable, "room %s is not synced yet", id)
		}
		levels := rc.room.State().Levels
		users := map[string]int64{}
		for k, v := range levels.Users {
			users[k] = v
		}
		users[u.String()] = level
		levels.Users = users
		empty := ""
		ev, err := e.author(id, rc, rooms.TypePower, &empty, rooms.Encode(levels))
		if err != nil {
			return err
		}
		resp.Event = ev.ID.String()
		return nil
	})
	return resp, err
}

// sniffImage names the MIME type of common image formats.
func sniffImage(b []byte) (string, error) {
	switch {
	case len(b) > 8 && string(b[:8]) == "\x89PNG\r\n\x1a\n":
		return "image/png", nil
	case len(b) > 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff:
		return "image/jpeg", nil
	case len(b) > 6 && (string(b[:6]) == "GIF87a" || string(b[:6]) == "GIF89a"):
		return "image/gif", nil
	case len(b) > 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "image/webp", nil
	}
	return "", errorf(api.KindInvalid, "avatar must be a PNG, JPEG, GIF or WebP image")
}

// blob authors a blob event holding data and returns its ID.
func (e *Engine) blob(id crdt.RoomID, rc *roomCtl, data []byte) (string, error) {
	if len(data) > MaxBlob {
		return "", errorf(api.KindInvalid, "image of %d bytes is too large (at most %d)", len(data), MaxBlob)
	}
	mime, err := sniffImage(data)
	if err != nil {
		return "", err
	}
	ev, err := e.author(id, rc, TypeBlob, nil, rooms.Encode(BlobBody{Mime: mime, Data: data}))
	if err != nil {
		return "", err
	}
	return ev.ID.String(), nil
}

// SetRoom changes a room's name, topic and avatar.
func (e *Engine) SetRoom(ctx context.Context, req api.RoomSetReq) (api.EventResp, error) {
	return e.setRoom(ctx, req, "")
}

// setRoom is SetRoom; avatarLink, if not empty, is a media avatar
// (avatars.go) that replaces req.Avatar.
func (e *Engine) setRoom(ctx context.Context, req api.RoomSetReq, avatarLink string) (api.EventResp, error) {
	if req.AvatarPath != "" {
		return api.EventResp{}, errorf(api.KindUnavailable, "the media store is not open")
	}
	if req.Name == nil && req.Topic == nil && req.Avatar == nil && avatarLink == "" {
		return api.EventResp{}, errorf(api.KindInvalid, "nothing to set: give --name, --topic or --avatar")
	}
	if err := checkFields(limitField{"room name", req.Name, MaxRoomName}, limitField{"topic", req.Topic, MaxTopic}); err != nil {
		return api.EventResp{}, err
	}
	if req.Avatar != nil {
		if _, err := sniffImage(req.Avatar); err != nil {
			return api.EventResp{}, err
		}
	}
	var resp api.EventResp
	err := e.do(ctx, func() error {
		id, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		empty := ""
		set := func(typ, value string) error {
			ev, err := e.author(id, rc, typ, &empty, rooms.Encode(rooms.TextBody{Value: value}))
			if err == nil {
				resp.Event = ev.ID.String()
			}
			return err
		}
		if req.Name != nil {
			if err := set(rooms.TypeName, *req.Name); err != nil {
				return err
			}
		}
		if req.Topic != nil {
			if err := set(rooms.TypeTopic, *req.Topic); err != nil {
				return err
			}
		}
		if avatarLink != "" {
			return set(rooms.TypeAvatar, avatarLink)
		}
		if req.Avatar != nil {
			if err := rc.room.Check(e.ident.User, rooms.TypeAvatar, &empty, rooms.Encode(rooms.TextBody{})); err != nil {
				return err
			}
			ref, err := e.blob(id, rc, req.Avatar)
			if err != nil {
				return err
			}
			return set(rooms.TypeAvatar, ref)
		}
		return nil
	})
	return resp, err
}

// Redact deletes a message's body on every node.
func (e *Engine) Redact(ctx context.Context, req api.RedactReq) (api.EventResp, error) {
	target, err := crdt.ParseID(req.Event)
	if err != nil {
		return api.EventResp{}, errorf(api.KindInvalid, "%q is not an event ID", req.Event)
	}
	if err := checkField("reason", req.Reason, MaxReason); err != nil {
		return api.EventResp{}, err
	}
	var resp api.EventResp
	err = e.do(ctx, func() error {
		id, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		if !rc.log.Has(target) {
			return errorf(api.KindNotFound, "unknown event %s in room %s", req.Event, req.Room)
		}
		ev, err := e.author(id, rc, rooms.TypeRedact, nil, rooms.Encode(rooms.RedactBody{Target: []byte(target), Reason: req.Reason}))
		if err != nil {
			return err
		}
		resp.Event = ev.ID.String()
		return nil
	})
	return resp, err
}

// Invites lists pending invites for rooms this user has not joined: those
// from contacts, and apart from them the requests of strangers (invites.go).
func (e *Engine) Invites(ctx context.Context) (api.InvitesResp, error) {
	resp := api.InvitesResp{Invites: []api.Invite{}, Requests: []api.Invite{}}
	err := e.do(ctx, func() error {
		resp.RequestsDropped = e.inv.dropped
		for _, inv := range e.inv.list() {
			if id, err := crdt.ParseID(inv.Room); err == nil {
				if rc := e.rooms[id]; rc != nil && rc.room != nil {
					st := rc.room.State()
					if m := st.Member(e.ident.User).Membership; m == rooms.Join || m == rooms.Ban {
						continue
					}
				}
			}
			if u, err := crdt.ParseKey(inv.Inviter); err == nil && e.prefs.blocked(u) {
				continue
			}
			box := &resp.Invites
			if !inv.Contact {
				box = &resp.Requests
			}
			*box = append(*box, api.Invite{Room: inv.Room, Inviter: inv.Inviter, Name: inv.Name})
		}
		return nil
	})
	return resp, err
}

// Decline forgets the pending invite to a room. The inviter is not told;
// a new invite to the room is taken again.
func (e *Engine) Decline(ctx context.Context, req api.RoomReq) (api.RoomResp, error) {
	id, err := crdt.ParseID(req.Room)
	if err != nil {
		return api.RoomResp{}, errorf(api.KindInvalid, "%q is not a room ID", req.Room)
	}
	err = e.do(ctx, func() error {
		if _, ok := e.inv.byID[id.String()]; !ok {
			return errorf(api.KindNotFound, "no pending invite to room %s (see: parley invites)", id)
		}
		e.dropInvite(id, false)
		return nil
	})
	return api.RoomResp{Room: id.String()}, err
}

// Policy reads or sets the invite policy.
func (e *Engine) Policy(ctx context.Context, req api.PolicyReq) (api.PolicyResp, error) {
	switch req.Policy {
	case "", PolicyAnyone, PolicyContacts, PolicyNobody:
	default:
		return api.PolicyResp{}, errorf(api.KindInvalid, "policy must be anyone, contacts or nobody, not %q", req.Policy)
	}
	var resp api.PolicyResp
	err := e.do(ctx, func() error {
		if req.Policy != "" {
			e.prefs.Policy = req.Policy
			e.savePrefs(nil)
		}
		resp.Policy = e.prefs.Policy
		return nil
	})
	return resp, err
}

// SetBlocked blocks or unblocks a user and returns the blocked list.
func (e *Engine) SetBlocked(ctx context.Context, user string, on bool) (api.BlockedResp, error) {
	var resp api.BlockedResp
	err := e.do(ctx, func() error {
		if user != "" {
			u, err := parseUser(user)
			if err != nil {
				return err
			}
			if u == e.ident.User {
				return errorf(api.KindInvalid, "you cannot block yourself")
			}
			e.prefs.setBlocked(u, on)
			e.savePrefs(nil)
		}
		resp.Blocked = append([]string{}, e.prefs.Blocked...)
		return nil
	})
	return resp, err
}

// ProfileSet changes this user's display name and avatar in every joined room.
func (e *Engine) ProfileSet(ctx context.Context, req api.ProfileSetReq) (api.ProfileResp, error) {
	return e.profileSet(ctx, req, "")
}

// profileSet is ProfileSet; avatarLink, if not empty, is a media avatar
// (avatars.go) that replaces req.Avatar.
func (e *Engine) profileSet(ctx context.Context, req api.ProfileSetReq, avatarLink string) (api.ProfileResp, error) {
	if req.AvatarPath != "" {
		return api.ProfileResp{}, errorf(api.KindUnavailable, "the media store is not open")
	}
	if err := checkFields(limitField{"display name", req.Name, MaxDisplayName}); err != nil {
		return api.ProfileResp{}, err
	}
	if req.Avatar != nil {
		if _, err := sniffImage(req.Avatar); err != nil {
			return api.ProfileResp{}, err
		}
		if len(req.Avatar) > MaxBlob {
			return api.ProfileResp{}, errorf(api.KindInvalid, "image of %d bytes is too large (at most %d)", len(req.Avatar), MaxBlob)
		}
	}
	var resp api.ProfileResp
	err := e.do(ctx, func() error {
		// Check every room first, so that a refusal changes nothing.
		var joined []crdt.RoomID
		me := e.ident.User.String()
		for id, rc := range e.rooms {
			if rc.room == nil || rc.room.MembershipOf(e.ident.User) != rooms.Join {
				continue
			}
			if err := rc.room.Check(e.ident.User, rooms.TypeProfile, &me, rooms.Encode(rooms.ProfileBody{})); err != nil {
				return errorf(api.KindPermission, "room %s does not let this user change their profile (%v); nothing changed", id, err)
			}
			joined = append(joined, id)
		}
		slices.Sort(joined)
		if req.Name != nil {
			e.prefs.DisplayName = *req.Name
		}
		if req.Avatar != nil {
			e.prefs.Avatar, e.prefs.AvatarLink = req.Avatar, ""
		}
		if avatarLink != "" {
			e.prefs.Avatar, e.prefs.AvatarLink = nil, avatarLink
		}
		e.savePrefs(nil) // before the profile events: a failed save fails them too
		// Past the checks only a broken disk fails a room: the profile is
		// saved, so each room that failed is named and the others keep it.
		var failed []error
		for _, id := range joined {
			if err := e.publishProfile(id, e.rooms[id]); err != nil {
				failed = append(failed, fmt.Errorf("room %s: %w", id, err))
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("profile changed in %d of %d rooms: %w", len(joined)-len(failed), len(joined), errors.Join(failed...))
		}
		resp = e.profileOf(e.ident.User)
		return nil
	})
	return resp, err
}

// publishProfile writes this user's profile into one room.
func (e *Engine) publishProfile(id crdt.RoomID, rc *roomCtl) error {
	if e.prefs.DisplayName == "" && e.prefs.Avatar == nil && e.prefs.AvatarLink == "" {
		return nil
	}
	body := rooms.ProfileBody{DisplayName: e.prefs.DisplayName, Avatar: e.prefs.AvatarLink}
	if e.prefs.Avatar != nil {
		ref, err := e.blob(id, rc, e.prefs.Avatar)
		if err != nil {
			return err
		}
		body.Avatar = ref
	}
	me := e.ident.User.String()
	_, err := e.author(id, rc, rooms.TypeProfile, &me, rooms.Encode(body))
	return err
}

// ProfileGet returns a user's profile as seen in the rooms shared with them.
func (e *Engine) ProfileGet(ctx context.Context, req api.UserReq) (api.ProfileResp, error) {
	u := e.ident.User
	if req.User != "" {
		var err error
		if u, err = parseUser(req.User); err != nil {
			return api.ProfileResp{}, err
		}
	}
	var resp api.ProfileResp
	err := e.do(ctx, func() error {
		resp = e.profileOf(u)
		return nil
	})
	return resp, err
}

// profileOf finds u's display name and avatar in the rooms this node keeps
// (the room with the lowest ID that has one, so the answer is stable).
func (e *Engine) profileOf(u crdt.UserID) api.ProfileResp {
	resp := api.ProfileResp{User: u.String()}
	ids := make([]crdt.RoomID, 0, len(e.rooms))
	for id := range e.rooms {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		rc := e.rooms[id]
		if rc.room == nil {
			continue
		}
		st := e.stateOf(rc)
		m := st.Member(u)
		if resp.DisplayName == "" {
			resp.DisplayName = m.DisplayName
		}
		if resp.Avatar == "" {
			resp.Avatar = m.Avatar
		}
	}
	if u == e.ident.User && resp.Avatar == "" {
		resp.Avatar = e.prefs.AvatarLink
	}
	resp.Avatar, resp.AvatarMedia = avatarOut(resp.Avatar)
	if u == e.ident.User && resp.DisplayName == "" {
		resp.DisplayName = e.prefs.DisplayName
	}
	return resp
}

// DMRoom finds the direct-message room with u: an existing one (the lowest
// room ID among rooms whose DM pair is this user and u), or a pending DM
// invite from u. It returns "" when there is none.
func (e *Engine) DMRoom(ctx context.Context, u crdt.UserID) (room string, invited bool, err error) {
	err = e.do(ctx, func() error {
		var found []crdt.RoomID
		for id, rc := range e.rooms {
			if rc.room == nil {
				continue
			}
			st := rc.room.State()
			if st.DM == nil {
				continue
			}
			if (st.Creator == e.ident.User && *st.DM == u) || (st.Creator == u && *st.DM == e.ident.User) {
				found = append(found, id)
			}
		}
		if len(found) > 0 {
			room = slices.Min(found).String()
			return nil
		}
		for _, inv := range e.inv.list() {
			if inv.DM && inv.Inviter == u.String() {
				room, invited = inv.Room, true
				return nil
			}
		}
		return nil
	})
	return room, invited, err
}

// dmPeer is the other user of a direct-message room as seen by me, or ""
// when st is not a DM room of mine.
func dmPeer(st rooms.State, me crdt.UserID) string {
	switch {
	case st.DM == nil:
		return ""
	case st.Creator == me:
		return st.DM.String()
	case *st.DM == me:
		return st.Creator.String()
	}
	return ""
}

// CreateDM creates a private two-person room with u and invites u.
func (e *Engine) CreateDM(ctx context.Context, u crdt.UserID) (api.RoomResp, error) {
	if u == e.ident.User {
		return api.RoomResp{}, errorf(api.KindInvalid, "a direct-message room needs another user")
	}
	return e.createRoom(ctx, api.RoomCreateReq{}, &u) // one step: the room and the invite commit as one batch
}

// ReceiveInvite takes an invite delivered by a peer: it checks that it is
// for this user, applies the block list and the invite policy, and records
// it with via, the delivering node's addresses (checked by the Inviter).
func (e *Engine) ReceiveInvite(ctx context.Context, create, invite *crdt.Event, name string, from peer.ID, via []string) error {
	if create.Type != crdt.TypeCreate || invite.Room != create.ID || invite.Type != rooms.TypeMember || invite.StateKey == nil {
		return errorf(api.KindInvalid, "not an invite")
	}
	var mb rooms.MemberBody
	if err := rooms.DecodeBody(invite.Body, &mb); err != nil || mb.Membership != rooms.Invite {
		return errorf(api.KindInvalid, "not an invite")
	}
	var cb rooms.CreateBody
	if err := rooms.DecodeBody(create.Body, &cb); err != nil {
		return errorf(api.KindInvalid, "bad create event")
	}
	if cb.Name == "" {
		cb.Name = name // an encrypted room's name, told by the inviter (inviteBook.add cuts it to MaxRoomName)
	}
	return e.do(ctx, func() error {
		if *invite.StateKey != e.ident.User.String() {
			return errorf(api.KindInvalid, "invite is for another user")
		}
		inviter := invite.User
		switch {
		case e.prefs.blocked(inviter):
			return errorf(api.KindPermission, "inviter is blocked")
		case e.prefs.Policy == PolicyNobody:
			return errorf(api.KindPermission, "this user accepts no invites")
		case e.prefs.Policy == PolicyContacts && !e.knows(inviter):
			return errorf(api.KindPermission, "this user accepts invites from contacts only")
		}
		room := create.ID.String()
		if _, ok := e.inv.byID[room]; ok {
			return nil
		}
		if rc := e.rooms[create.ID]; rc != nil && rc.room != nil && rc.room.MembershipOf(e.ident.User) == rooms.Join {
			return nil // joined already
		}
		contact := e.knows(inviter)
		if !contact && !e.inv.admitRequest(inviter) {
			return errorf(api.KindUnavailable, "too many invite requests from this user, try later")
		}
		ok, err := e.addInvite(pendingInvite{Room: room, Inviter: inviter.String(), Name: cb.Name, DM: len(cb.DM) > 0, Contact: contact, Via: via})
		if err != nil {
			return err
		}
		if !ok {
			return errorf(api.KindUnavailable, "too many pending invites")
		}
		if !contact {
			return nil // a request: kept, but nobody is told
		}
		e.emit("", api.WatchItem{Kind: "invite", Room: room}) // to the watchers of every room, once the invite is stored
		return nil
	})
}

// knows reports whether u is a contact of this user or was verified by it:
// its invites go to the inbox, not to the requests (invites.go).
func (e *Engine) knows(u crdt.UserID) bool { return e.isContact(u) || e.prefs.verified(u) }

// isContact reports whether u is joined in a room where this user is joined.
func (e *Engine) isContact(u crdt.UserID) bool {
	for _, rc := range e.rooms {
		if rc.room == nil {
			continue
		}
		st := rc.room.State()
		if st.Member(u).Membership == rooms.Join && st.Member(e.ident.User).Membership == rooms.Join {
			return true
		}
	}
	return false
}

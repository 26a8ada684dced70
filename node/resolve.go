package node

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// People name rooms by their names, users by their display names and events
// by short references, like git's abbreviated hashes. Every event ID starts
// with the same "bafyrei" (CIDv1, dag-cbor, sha2-256, base32), so a
// reference is the part after it: the shortest prefix of that part, of at
// least RefLen characters, that no other event held for the room shares.

// idStart is how every event ID begins.
const idStart = "bafyrei"

// Resolve answers EpResolve.
func (e *Engine) Resolve(ctx context.Context, req api.ResolveReq) (api.ResolveResp, error) {
	var resp api.ResolveResp
	err := e.do(ctx, func() error {
		if req.Room == "" && len(req.Events) > 0 {
			return errorf(api.KindInvalid, "an event reference needs its room")
		}
		if req.Room != "" {
			id, err := e.roomNamed(req.Room)
			if err != nil {
				return err
			}
			resp.Room = id.String()
			for _, s := range req.Events {
				ev, err := e.eventRef(id, e.rooms[id], s)
				if err != nil {
					return err
				}
				resp.Events = append(resp.Events, ev.String())
			}
		}
		for _, s := range req.Users {
			u, err := e.userNamed(s)
			if err != nil {
				return err
			}
			resp.Users = append(resp.Users, u.String())
		}
		return nil
	})
	return resp, err
}

// roomNamed is the room with ID s, or the one room of this node named s.
func (e *Engine) roomNamed(s string) (crdt.RoomID, error) {
	if id, err := crdt.ParseID(s); err == nil {
		if e.rooms[id] == nil {
			return "", errorf(api.KindNotFound, "unknown room %s (join it first: parley room join ROOM --via PEER)", s)
		}
		return id, nil
	}
	var exact, folded []string
	for id, rc := range e.rooms {
		if rc.room == nil {
			continue
		}
		name := e.stateOf(rc).Name
		switch {
		case name == s:
			exact = append(exact, id.String())
		case strings.EqualFold(name, s):
			folded = append(folded, id.String())
		}
	}
	if len(exact) == 0 {
		exact = folded
	}
	switch len(exact) {
	case 0:
		return "", errorf(api.KindNotFound, "no room named %q on this node (see: parley room list)", s)
	case 1:
		return crdt.ParseID(exact[0])
	}
	slices.Sort(exact)
	return "", errorf(api.KindInvalid, "%d rooms are named %q: %s (give the room ID)", len(exact), s, strings.Join(exact, ", "))
}

// userNamed is the user with ID s, or the one member of this node's rooms
// whose display name is s.
func (e *Engine) userNamed(s string) (crdt.UserID, error) {
	if u, err := crdt.ParseKey(s); err == nil {
		return u, nil
	}
	exact, folded := map[crdt.UserID]bool{}, map[crdt.UserID]bool{}
	for _, rc := range e.rooms {
		if rc.room == nil {
			continue
		}
		for _, m := range e.stateOf(rc).Members {
			switch {
			case m.DisplayName == s:
				exact[m.User] = true
			case strings.EqualFold(m.DisplayName, s) && m.DisplayName != "":
				folded[m.User] = true
			}
		}
	}
	if len(exact) == 0 {
		exact = folded
	}
	ids := make([]string, 0, len(exact))
	for u := range exact {
		ids = append(ids, u.String())
	}
	slices.Sort(ids)
	switch len(ids) {
	case 0:
		return crdt.UserID{}, errorf(api.KindNotFound, "no user named %q in this node's rooms (give the user ID)", s)
	case 1:
		return crdt.ParseKey(ids[0])
	}
	return crdt.UserID{}, errorf(api.KindInvalid, "%d users are named %q: %s (give the user ID)", len(ids), s, strings.Join(ids, ", "))
}

// eventRef is the event of the room that s names: its ID, or a reference.
// An ID is returned as it is (whether the room holds it is for the method
// that uses it to say).
func (e *Engine) eventRef(room crdt.RoomID, rc *roomCtl, s string) (crdt.EventID, error) {
	if id, err := crdt.ParseID(s); err == nil {
		return id, nil
	}
	prefix := strings.ToLower(s)
	if !strings.HasPrefix(prefix, idStart) {
		prefix = idStart + prefix
	}
	if len(prefix) < len(idStart)+api.RefLen || strings.Trim(prefix, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		return "", errorf(api.KindInvalid, "%q is not an event ID or reference (%d or more characters of one, as 'parley history' shows)", s, api.RefLen)
	}
	found := matching(rc.refs.sorted(rc.log), prefix)
	switch len(found) {
	case 0:
		return "", errorf(api.KindNotFound, "no event %s in room %s", s, room)
	case 1:
		return crdt.ParseID(found[0])
	}
	slices.Sort(found)
	if len(found) > 5 {
		found = append(found[:5], fmt.Sprintf("and %d more", len(found)-5))
	}
	return "", errorf(api.KindInvalid, "event reference %s is ambiguous in room %s: %s (give more characters)", s, room, strings.Join(found, ", "))
}

// refIndex keeps the tails (the part after idStart) of a room's held event
// IDs sorted, so that a short reference or a prefix costs a binary search
// rather than encoding and sorting every ID of the room on each look. A
// room's held set only grows between engine steps (a failed commit's
// Revert happens within its step), so the index takes in the events held
// since it last looked, found by their count.
type refIndex struct {
	tails []string // sorted
	seen  map[crdt.EventID]struct{}
}

// sorted brings the index up to the log and returns the sorted tails.
func (x *refIndex) sorted(l *crdt.Log) []string {
	if len(x.seen) == l.Len() {
		return x.tails
	}
	if x.seen == nil || len(x.seen) > l.Len() {
		x.tails, x.seen = nil, map[crdt.EventID]struct{}{}
	}
	var added []string
	for _, it := range l.Items(0) {
		if _, ok := x.seen[it.ID]; !ok {
			x.seen[it.ID] = struct{}{}
			added = append(added, strings.TrimPrefix(it.ID.String(), idStart))
		}
	}
	x.tails = append(x.tails, added...)
	slices.Sort(x.tails) // pdqsort: cheap on a sorted run and a short tail
	return x.tails
}

// matching are the IDs whose tails, sorted, start with the tail of prefix.
func matching(tails []string, prefix string) []string {
	tail := strings.TrimPrefix(prefix, idStart)
	var found []string
	for i, _ := slices.BinarySearch(tails, tail); i < len(tails) && strings.HasPrefix(tails[i], tail); i++ {
		found = append(found, idStart+tails[i])
	}
	return found
}

// refs is the short reference of each of ids among all (an ID not in all
// gets none): the shortest prefix, of at least RefLen characters, of the
// part after idStart that no other ID of all shares.
func refs(all, ids []string) map[string]string { return refsIn(sortedTails(all), ids) }

// sortedTails are the tails of IDs, sorted.
func sortedTails(ids []string) []string {
	tails := make([]string, len(ids))
	for i, id := range ids {
		tails[i] = strings.TrimPrefix(id, idStart)
	}
	slices.Sort(tails)
	return tails
}

// refsIn is refs with the tails of all, sorted.
func refsIn(tails, ids []string) map[string]string {
	if len(ids) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, id := range ids {
		tail, ok := strings.CutPrefix(id, idStart)
		if !ok || out[id] != "" {
			continue
		}
		i := sort.SearchStrings(tails, tail)
		if i == len(tails) || tails[i] != tail {
			continue
		}
		n := api.RefLen
		for _, j := range []int{i - 1, i + 1} {
			if j >= 0 && j < len(tails) {
				n = max(n, commonPrefix(tail, tails[j])+1)
			}
		}
		out[id] = tail[:min(n, len(tail))]
	}
	return out
}

// watchLabels are the short reference of a watched event and its sender's
// display name (empty where unknown).
func (e *Engine) watchLabels(ctx context.Context, room string, te *api.TimelineEvent) (ref, name string) {
	e.do(ctx, func() error {
		id, err := crdt.ParseID(room)
		if err != nil || e.rooms[id] == nil || e.rooms[id].room == nil {
			return nil
		}
		rc := e.rooms[id]
		ref = refsIn(rc.refs.sorted(rc.log), []string{te.ID})[te.ID]
		if u, err := crdt.ParseKey(te.Sender); err == nil {
			st := e.stateOf(rc)
			if name = st.Member(u).DisplayName; name == "" {
				name = e.profileOf(u).DisplayName
			}
		}
		return nil
	})
	return ref, name
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// labels fills a history answer's references to the events it lists (and
// those they answer, thread under, redact or replace) and the display
// names of the users it mentions.
func (e *Engine) labels(rc *roomCtl, resp *api.HistoryResp) {
	var ids []string
	users := map[string]bool{}
	for _, te := range resp.Events {
		ids = append(ids, te.ID, te.ReplyTo, te.Thread, te.Redacts, te.Replaces)
		users[te.Sender] = true
		if te.StateKey != nil {
			users[*te.StateKey] = true
		}
		for _, u := range te.Mentions {
			users[u] = true
		}
	}
	resp.Refs = refsIn(rc.refs.sorted(rc.log), slices.DeleteFunc(ids, func(s string) bool { return s == "" }))
	st := e.stateOf(rc)
	for s := range users {
		u, err := crdt.ParseKey(s)
		if err != nil {
			continue
		}
		name := st.Member(u).DisplayName
		if name == "" {
			name = e.profileOf(u).DisplayName
		}
		if name != "" {
			if resp.Names == nil {
				resp.Names = map[string]string{}
			}
			resp.Names[s] = name
		}
	}
}

// keyEvent reports the key-management events a person's history leaves
// out unless asked (HistoryReq.Quiet).
func keyEvent(typ string) bool {
	return typ == rooms.TypeDevice || typ == rooms.TypeRotate || typ == rooms.TypeKeyFwd
}

// messageFile is the file of the media message s (an ID or reference) of
// a room, with its key from inside the message.
func (e *Engine) messageFile(ctx context.Context, room, s string) (*api.MessageMedia, error) {
	var mm *api.MessageMedia
	err := e.do(ctx, func() error {
		id, err := e.roomNamed(room)
		if err != nil {
			return err
		}
		rc := e.rooms[id]
		if rc.room == nil {
			return errorf(api.KindUnavailable, "room %s is not synced yet", id)
		}
		ev, err := e.eventRef(id, rc, s)
		if err != nil {
			return err
		}
		m, ok := e.timelineOf(id, rc).proj.Message(ev)
		switch {
		case !ok:
			return errorf(api.KindNotFound, "no message %s in room %s", s, id)
		case m.Redacted || m.Deleted:
			return errorf(api.KindInvalid, "message %s was redacted: its file is gone", s)
		}
		if mm = messageMedia(m.Media); mm == nil || mm.Key == "" {
			return errorf(api.KindInvalid, "message %s has no file", s)
		}
		return nil
	})
	return mm, err
}

// mediaKey is the file key of the blob cid from a message of one of this
// node's rooms that refers to it (as the file or its thumbnail).
func (e *Engine) mediaKey(ctx context.Context, cid string) (string, error) {
	var key string
	err := e.do(ctx, func() error {
		for id, rc := range e.rooms {
			if rc.room == nil {
				continue
			}
			for _, m := range e.timelineOf(id, rc).proj.Messages() {
				mm := messageMedia(m.Media)
				switch {
				case mm == nil || m.Redacted || m.Deleted:
				case mm.CID == cid && mm.Key != "":
					key = mm.Key
					return nil
				case mm.ThumbnailCID == cid && mm.ThumbnailKey != "":
					key = mm.ThumbnailKey
					return nil
				}
			}
		}
		return errorf(api.KindNotFound, "no message on this node carries the key of %s: give it as CID#KEY or --key", cid)
	})
	return key, err
}

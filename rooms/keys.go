package rooms

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// End-to-end encryption in the room state machine (docs/design.md §5,
// docs/protocol.md §5.1). A room is encrypted when its create body says
// e2ee. Then:
//
//   - Every device of a joined user announces itself with a `device` state
//     event (state key: its device ID, authored by that device) carrying its
//     signed KEM record. The member device set at a view is the joined
//     users' announced, non-removed devices.
//   - Epochs are introduced by rotations: a `rotate` event, or one embedded
//     in a kick or ban (`member`), in a device removal, or in a `joined`
//     room's device announcement (the join barrier). The envelope's epoch
//     field names the new epoch. Recipients must equal the member device set
//     at the rotation's causal view (for an embedded rotation, the state
//     after the operation).
//   - Cuts: removals of a joined member (kick, ban, leave), device removals
//     and, in a `joined` room, device announcements. Every content event (any
//     type that is not a control type: Sealed) carries the epoch it is
//     sealed under, and that epoch's rotation must be in its past and
//     descend from every cut in its past (e2ee.CheckEpochUse). Key forwards
//     (`keyfwd`) obey the same rule and go to member devices only.
//
// Every check is a function of the event's causal past, so all nodes
// decide alike. What the checks see is only the envelope and the control
// bodies: a relay without keys validates everything.

// Event types of the key layer.
const (
	TypeDevice = "device" // state key: the device ID (crdt.DeviceID.String())
	TypeRotate = "rotate"
	TypeKeyFwd = "keyfwd"
)

// DeviceBody is the body of a device event. An announcement carries the
// device's KEM record (signed by the device, which must be the author and
// the state key); a removal, authored by another device of the same user,
// sets Removed and carries the rotation that excludes the device. In a
// `joined` room an announcement carries the join barrier rotation.
type DeviceBody struct {
	KEM      []byte `cbor:"kem,omitempty"`      // e2ee.KEMRecord
	Removed  bool   `cbor:"removed,omitempty"`  // the device is no longer the user's
	Rotation []byte `cbor:"rotation,omitempty"` // e2ee.Rotation
}

// Sealed reports whether events of type typ carry a sealed body (and an
// epoch) in an encrypted room: every content type, the room's name, topic
// and avatar, and user profiles. Control events stay readable so that
// every node, relays included, can authorize them.
func Sealed(typ string) bool {
	switch typ {
	case TypeCreate, TypeMember, TypePower, TypeJoinRule,
		TypeRedact, TypeDevice, TypeRotate, TypeKeyFwd, TypeLimits:
		return false
	}
	return true
}

// Placeholders: what the rules see of sealed state values (they never
// read them).
var (
	placeholderText    = Encode(TextBody{})
	placeholderProfile = Encode(ProfileBody{})
)

// parseIn parses a body as an event of a room with these create
// parameters sees it: sealed state values are not decoded.
func parseIn(cb *CreateBody, typ string, skey *string, body []byte) (*parsed, error) {
	if cb.E2EE {
		switch typ {
		case TypeName, TypeTopic, TypeAvatar:
			body = placeholderText
		case TypeProfile:
			body = placeholderProfile
		}
	}
	return parseBody(typ, skey, body)
}

// StateID returns the event that currently sets the state (typ, skey), or "".
func (r *Room) StateID(typ, skey string) crdt.EventID {
	if v := r.current().lookup(stateKey(typ, skey)); v >= 0 {
		return r.ev(v).ev.ID
	}
	return ""
}

// noCuts is the cut set of an event with no cut in its past.
var noCuts = &rmSet{}

// keyState is a room's bookkeeping of the key layer.
type keyState struct {
	epochs  map[e2ee.EpochID][]int32                    // accepted rotations introducing each epoch
	holders map[e2ee.EpochID]map[crdt.DeviceID]struct{} // devices wrapped in a rotation or forward
	uses    map[e2ee.EpochID]int                        // accepted content events under each epoch
}

func (k *keyState) init() {
	k.epochs = map[e2ee.EpochID][]int32{}
	k.holders = map[e2ee.EpochID]map[crdt.DeviceID]struct{}{}
	k.uses = map[e2ee.EpochID]int{}
}

// keyParsed is what the key layer decodes of an event.
type keyParsed struct {
	rot *e2ee.Rotation
	fwd *e2ee.KeyForward
	kem *e2ee.KEMRecord // a device announcement's record
	cut bool
}

func deviceKey(d crdt.DeviceID) string { return stateKey(TypeDevice, d.String()) }

// membershipIn is u's membership in state s.
func (r *Room) membershipIn(s *snap, u crdt.UserID) string {
	if v := s.lookup(r.userKey(u)); v >= 0 {
		return r.ev(v).body.membership
	}
	if u == r.create.User {
		return Join
	}
	return ""
}

// memberDevices is the member device set at state s, sorted by device.
func (r *Room) memberDevices(s *snap) []*e2ee.KEMRecord {
	var out []*e2ee.KEMRecord
	s.each(func(k string, v int32) {
		if !strings.HasPrefix(k, TypeDevice+"\x00") {
			return
		}
		ei := r.ev(v)
		if ei.keys == nil || ei.keys.kem == nil {
			return
		}
		if r.membershipIn(s, ei.ev.User) == Join {
			out = append(out, ei.keys.kem)
		}
	})
	slices.SortFunc(out, func(a, b *e2ee.KEMRecord) int { return bytes.Compare(a.Device[:], b.Device[:]) })
	return out
}

// isRemoval reports whether v (a state value, -1 for none) is a device
// removal.
func (r *Room) isRemoval(v int32) bool {
	if v < 0 {
		return false
	}
	b := r.ev(v).body
	return b != nil && b.device != nil && b.device.Removed
}

func deviceIDs(recs []*e2ee.KEMRecord) []crdt.DeviceID {
	out := make([]crdt.DeviceID, len(recs))
	for i, r := range recs {
		out[i] = r.Device
	}
	return out
}

// checkDeviceStateless applies the rules of a device event that need no
// state: an announcement names its author's own device and carries that
// device's validly signed KEM record.
func checkDeviceStateless(e *crdt.Event, p *parsed) error {
	if p.device == nil {
		return nil
	}
	if p.device.Removed {
		if p.device.KEM != nil {
			return malformed("device removal with a KEM record")
		}
		if *e.StateKey == e.Device.String() {
			return refuse("a device cannot remove itself")
		}
		return nil
	}
	if *e.StateKey != e.Device.String() {
		return refuse("device announced by another device")
	}
	if p.device.KEM == nil {
		return malformed("device announcement without a KEM record")
	}
	rec, err := e2ee.DecodeKEMRecord(p.device.KEM)
	if err != nil {
		return malformed("bad KEM record")
	}
	if rec.Device != e.Device {
		return refuse("KEM record of another device")
	}
	return nil
}

// rotationReason turns an admissibility failure into a stable reason.
func rotationReason(err error, what string) string {
	var in *e2ee.Inadmissible
	if errors.As(err, &in) {
		switch in.Rule {
		case e2ee.RuleAuthor:
			return what + " author is not a member device"
		case e2ee.RuleRecipients:
			if strings.Contains(in.Reason, "omits") {
				return what + " omits member device(s)"
			}
			return what + " wraps to non-member device(s)"
		case e2ee.RuleForward:
			return what + " wraps to non-member device(s)"
		}
	}
	return what + " is inadmissible"
}

// judgeKeys applies the key layer's rules to an event the auth rules
// allowed; it returns a refusal reason or "". It fills info.keys.
func (r *Room) judgeKeys(idx int32, info *evInfo) string {
	e, p := info.ev, info.body
	hasRot := p.device != nil && p.device.Rotation != nil || p.member != nil && p.member.Rotation != nil
	if !r.cbody.E2EE {
		switch {
		case e.Type == TypeDevice || e.Type == TypeRotate || e.Type == TypeKeyFwd:
			return "room is not encrypted"
		case len(e.Epoch) > 0:
			return "epoch in an unencrypted room"
		case hasRot:
			return "rotation in an unencrypted room"
		}
		return ""
	}
	kp := &keyParsed{}
	info.keys = kp
	if r.isRemoval(info.before.lookup(deviceKey(e.Device))) {
		return deviceReason(true) // docs/design.md §5.2; never re-added
	}
	var rotBytes []byte
	view := info.before
	switch e.Type {
	case TypeRotate:
		rotBytes = e.Body
	case TypeMember:
		removal := p.target != e.User && (p.membership == Leave || p.membership == Ban) ||
			p.target == e.User && p.membership == Leave
		if removal && r.membershipIn(info.before, p.target) == Join {
			kp.cut = true
			if p.target != e.User { // a kick or ban carries the next epoch
				if p.member.Rotation == nil {
					return "removal of a joined member must carry a rotation"
				}
				rotBytes = p.member.Rotation
				view = info.before.set(info.key, idx)
			}
		}
		if p.member.Rotation != nil && rotBytes == nil {
			return "rotation only in a kick or ban of a joined member"
		}
	case TypeDevice:
		d := p.device
		prev := info.before.lookup(info.key)
		if d.Removed {
			if prev < 0 || r.ev(prev).keys == nil || r.ev(prev).keys.kem == nil {
				return "removal of a device that is not announced"
			}
			if r.ev(prev).ev.User != e.User {
				return "removal of another user's device"
			}
			kp.cut = true
			if d.Rotation == nil {
				return "device removal must carry a rotation"
			}
			rotBytes = d.Rotation
			view = info.before.set(info.key, idx)
		} else {
			// The author is the device (checkDeviceStateless): a removed
			// device was refused above, so a removal is never undone.
			kp.kem, _ = e2ee.DecodeKEMRecord(d.KEM) // checked stateless
			if r.cbody.History == HistoryJoined {
				kp.cut = true
				if d.Rotation == nil {
					return "device announcement in a joined-history room must carry a barrier rotation"
				}
				rotBytes = d.Rotation
				view = info.before.set(info.key, idx)
			} else if d.Rotation != nil {
				return "rotation in a device announcement of a shared-history room"
			}
		}
	case TypeKeyFwd:
		f, err := e2ee.DecodeKeyForward(e.Room, e.Device, e.Body)
		if err != nil {
			return "malformed key forward"
		}
		if !bytes.Equal(e.Epoch, f.Epoch[:]) {
			return "epoch field does not name the forwarded epoch"
		}
		if err := e2ee.CheckForward(f, e.Device, deviceIDs(r.memberDevices(info.before))); err != nil {
			return rotationReason(err, "key forward")
		}
		if why := r.checkEpochUse(info, f.Epoch); why != "" {
			return why
		}
		kp.fwd = f
		return ""
	default:
		if !Sealed(e.Type) {
			if len(e.Epoch) > 0 {
				return "epoch on a control event"
			}
			return ""
		}
		id, err := e2ee.EpochIDFromBytes(e.Epoch)
		if err != nil {
			return "content event without an epoch"
		}
		return r.checkEpochUse(info, id)
	}
	if rotBytes == nil {
		if len(e.Epoch) > 0 {
			return "epoch on a control event"
		}
		return ""
	}
	rot, err := e2ee.DecodeRotation(e.Room, e.Device, rotBytes)
	if err != nil {
		return "malformed rotation"
	}
	if !bytes.Equal(e.Epoch, rot.Epoch[:]) {
		return "epoch field does not name the rotation's epoch"
	}
	for _, x := range r.keys.epochs[rot.Epoch] {
		if r.isAncestor(x, info.prev) {
			return "epoch already introduced"
		}
	}
	if err := e2ee.CheckRotation(rot, e.Device, deviceIDs(r.memberDevices(view))); err != nil {
		return rotationReason(err, "rotation")
	}
	kp.rot = rot
	return ""
}

// checkEpochUse: the epoch's rotation is in the event's past and descends
// from every cut the event's past holds (e2ee.CheckEpochUse).
func (r *Room) checkEpochUse(info *evInfo, id e2ee.EpochID) string {
	seen := info.cuts
	known := false
	for _, x := range r.keys.epochs[id] {
		if !r.epochInPast(x, info) {
			continue
		}
		known = true
		if len(r.ev(x).cuts.xs) == len(seen.xs) { // ⊆ holds because x is in the past
			info.epochAt = x
			return ""
		}
	}
	if !known {
		return "epoch unknown to the author (no rotation of it in the event's past)"
	}
	return "epoch predates a removal the author had seen"
}

// epochInPast reports whether the epoch event x is in the past of the
// event's parents. A parent that found x for its own epoch (epochAt) has x
// in its past: that spares each event of a chain under one epoch the walk
// down to the epoch's rotation, which grows with the chain.
func (r *Room) epochInPast(x int32, info *evInfo) bool {
	for _, p := range info.prev {
		if p == x || r.ev(p).epochAt == x {
			return true
		}
	}
	return r.isAncestor(x, info.prev)
}

// epochUsed is the epoch an accepted event of an encrypted room uses: a
// content event's or a key forward's.
func (r *Room) epochUsed(x int32) (e2ee.EpochID, bool) {
	ei := r.ev(x)
	if ei.keys == nil || ei.keys.rot != nil {
		return e2ee.EpochID{}, false
	}
	if ei.keys.fwd != nil {
		return ei.keys.fwd.Epoch, true
	}
	if !Sealed(ei.ev.Type) {
		return e2ee.EpochID{}, false
	}
	id, err := e2ee.EpochIDFromBytes(ei.ev.Epoch)
	return id, err == nil
}

// keysAccepted records an accepted event in the key bookkeeping.
func (r *Room) keysAccepted(idx int32, info *evInfo) {
	kp := info.keys
	if kp == nil {
		return
	}
	if kp.cut {
		info.cuts = union(info.cuts, &rmSet{[]int32{idx}})
	}
	add := func(id e2ee.EpochID, ds []crdt.DeviceID) {
		h := r.keys.holders[id]
		if h == nil {
			h = map[crdt.DeviceID]struct{}{}
			r.keys.holders[id] = h
		}
		for _, d := range ds {
			h[d] = struct{}{}
		}
	}
	switch {
	case kp.rot != nil:
		r.keys.epochs[kp.rot.Epoch] = append(r.keys.epochs[kp.rot.Epoch], idx)
		add(kp.rot.Epoch, kp.rot.Recipients())
	case kp.fwd != nil:
		add(kp.fwd.Epoch, kp.fwd.Recipients())
	case Sealed(info.ev.Type):
		if id, err := e2ee.EpochIDFromBytes(info.ev.Epoch); err == nil {
			r.keys.uses[id]++
		}
	}
}

// Encrypted reports whether the room is end-to-end encrypted.
func (r *Room) Encrypted() bool { return r.cbody.E2EE }

// History is the room's history policy.
func (r *Room) History() string { return r.cbody.History }

// KeysOf returns the rotation and the key forward an accepted event
// carries (nil when none).
func (r *Room) KeysOf(id crdt.EventID) (*e2ee.Rotation, *e2ee.KeyForward) {
	i, ok := r.idx(id)
	if !ok || !r.ev(i).accepted || r.ev(i).keys == nil {
		return nil, nil
	}
	return r.ev(i).keys.rot, r.ev(i).keys.fwd
}

// RotationOf returns an accepted rotation introducing epoch (the first
// applied), or nil.
func (r *Room) RotationOf(id e2ee.EpochID) *e2ee.Rotation {
	if xs := r.keys.epochs[id]; len(xs) > 0 {
		return r.ev(xs[0]).keys.rot
	}
	return nil
}

// isHeads reports whether px (sorted) is exactly the room's heads: then
// every event applied is in its past and no walk is needed.
func (r *Room) isHeads(px []int32) bool {
	if len(px) != len(r.heads) {
		return false
	}
	for _, p := range px {
		if _, ok := r.heads[p]; !ok {
			return false
		}
	}
	return true
}

// inPast reports whether x is in the past of px (or one of them).
func (r *Room) inPast(x int32, px []int32, heads bool) bool {
	return heads || r.isAncestor(x, px)
}

// prevIdx maps event IDs to indexes of causally valid events; nil or none
// known means the heads.
func (r *Room) prevIdx(prev []crdt.EventID) []int32 {
	var idx []int32
	for _, p := range prev {
		if i, ok := r.idx(p); ok && r.ev(i).causalOK {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		for h := range r.heads {
			idx = append(idx, h)
		}
		slices.Sort(idx)
	}
	return idx
}

// MemberDevices is the member device set (their KEM records, sorted by
// device) at the state after prev (nil: the heads).
func (r *Room) MemberDevices(prev []crdt.EventID) []*e2ee.KEMRecord {
	if prev == nil {
		return r.memberDevices(r.current())
	}
	return r.memberDevices(r.stateAt(r.prevIdx(prev)))
}

// DeviceOf returns the KEM record a device announced (nil when none or
// removed) at the heads, and its user.
func (r *Room) DeviceOf(d crdt.DeviceID) (*e2ee.KEMRecord, crdt.UserID) {
	v := r.current().lookup(deviceKey(d))
	if v < 0 || r.ev(v).keys == nil {
		return nil, crdt.UserID{}
	}
	return r.ev(v).keys.kem, r.ev(v).ev.User
}

// EpochInfo describes an epoch introduced by an accepted rotation.
type EpochInfo struct {
	ID      e2ee.EpochID
	Event   crdt.EventID // the rotation's event
	Depth   uint64
	TS      int64 // the rotation's author clock, ms
	Uses    int   // accepted content events under it, as far as this copy holds
	Holders []crdt.DeviceID
}

func (r *Room) epochInfo(id e2ee.EpochID, x int32) EpochInfo {
	ev := r.ev(x).ev
	hs := make([]crdt.DeviceID, 0, len(r.keys.holders[id]))
	for d := range r.keys.holders[id] {
		hs = append(hs, d)
	}
	slices.SortFunc(hs, func(a, b crdt.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	return EpochInfo{ID: id, Event: ev.ID, Depth: ev.Depth, TS: ev.TS, Uses: r.keys.uses[id], Holders: hs}
}

func (r *Room) cmpNewest(a, b int32) int {
	ea, eb := r.ev(a).ev, r.ev(b).ev
	if c := cmp.Compare(eb.Depth, ea.Depth); c != 0 {
		return c
	}
	return cmp.Compare(eb.ID, ea.ID)
}

// AdmissibleEpochs lists the epochs an event with parents prev (nil: the
// heads) may use: rotations in its past that descend from every cut in its
// past. Newest (depth, ID) first; the sender's choice is the first it holds
// (docs/design.md §5.3).
func (r *Room) AdmissibleEpochs(prev []crdt.EventID) []EpochInfo {
	px := r.prevIdx(prev)
	heads := r.isHeads(px)
	seen := noCuts
	for _, p := range px {
		seen = union(seen, r.ev(p).cuts)
	}
	// Removals that count as cuts because they invalidate an add in the
	// past (overlay.epochCut).
	rms := &rmSet{}
	for _, p := range px {
		rms = union(rms, r.ev(p).rmIncl)
	}
	var extra []int32
	for _, p := range r.ov.invalid {
		if rms.has(p.rm) && r.inPast(p.add, px, heads) {
			extra = append(extra, p.rm)
		}
	}
	var xs []int32
	for _, list := range r.keys.epochs {
	next:
		for _, x := range list {
			if len(r.ev(x).cuts.xs) != len(seen.xs) || !r.inPast(x, px, heads) {
				continue
			}
			for _, rm := range extra {
				if !r.ev(x).rmIncl.has(rm) {
					continue next
				}
			}
			xs = append(xs, x)
		}
	}
	slices.SortFunc(xs, r.cmpNewest)
	out := make([]EpochInfo, len(xs))
	for i, x := range xs {
		out[i] = r.epochInfo(r.ev(x).keys.rot.Epoch, x)
	}
	return out
}

// RecentEpochs lists up to n epochs whose rotations are in the past of prev
// (nil: the heads), newest first: what a `shared` room's next rotation
// back-links.
func (r *Room) RecentEpochs(prev []crdt.EventID, n int) []EpochInfo {
	px := r.prevIdx(prev)
	heads := r.isHeads(px)
	var xs []int32
	for _, list := range r.keys.epochs {
		xs = append(xs, list...)
	}
	slices.SortFunc(xs, r.cmpNewest)
	var out []EpochInfo
	for _, x := range xs {
		if len(out) == n {
			break
		}
		if r.inPast(x, px, heads) {
			out = append(out, r.epochInfo(r.ev(x).keys.rot.Epoch, x))
		}
	}
	return out
}

// KeyStateHash digests the key layer's view at the heads: the member
// devices and the admissible epochs. Equal event sets give equal hashes.
func (r *Room) KeyStateHash() string {
	var b strings.Builder
	for _, d := range r.MemberDevices(nil) {
		fmt.Fprintf(&b, "d %s\n", d.Device)
	}
	for _, ep := range r.AdmissibleEpochs(nil) {
		fmt.Fprintf(&b, "e %s\n", ep.ID)
	}
	return b.String()
}

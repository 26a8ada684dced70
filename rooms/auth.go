package rooms

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/parley-p2p/parley/crdt"
)

// Errors.
var (
	ErrNoBody       = errors.New("rooms: body not available")
	ErrNotPermitted = errors.New("rooms: not permitted")
	ErrBadEvent     = errors.New("rooms: malformed event")
)

// Refusal is the error of an event the auth rules refuse. Reason is a
// stable, human-readable string that fixtures assert; Is(ErrNotPermitted)
// holds (and Is(ErrBadEvent) for malformed events).
type Refusal struct {
	Reason    string
	Malformed bool
}

func (r *Refusal) Error() string { return "rooms: not permitted: " + r.Reason }

// Is makes errors.Is(err, ErrNotPermitted) true, and ErrBadEvent for malformed events.
func (r *Refusal) Is(target error) bool {
	return target == ErrNotPermitted || (r.Malformed && target == ErrBadEvent)
}

func refuse(format string, args ...any) error {
	return &Refusal{Reason: fmt.Sprintf(format, args...)}
}

func malformed(format string, args ...any) error {
	return &Refusal{Reason: fmt.Sprintf(format, args...), Malformed: true}
}

// Reason returns the reason string of a refusal, or err's text.
func Reason(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// AuthState is what an event is judged against: the create event's
// parameters and the power, join-rule and member events that apply (taken
// either from the event's auth references or from the resolved state before
// it). Nil fields take their defaults.
type AuthState struct {
	Create   *crdt.Event                 // required
	Power    *crdt.Event                 // nil: default levels
	JoinRule *crdt.Event                 // nil: the create event's join rule
	Members  map[crdt.UserID]*crdt.Event // member events of (at least) the sender and the target
	Target   *crdt.Event                 // for a redaction: the event it names, if known
}

// Authorize judges one event against an auth state (rule R3): membership
// transitions, power levels, state and message permissions, redactions.
// It is a pure function of its arguments. A refusal wraps ErrNotPermitted
// and carries a stable reason (see Reason).
func Authorize(ev *crdt.Event, st AuthState) error {
	if st.Create == nil {
		return malformed("no create event")
	}
	var cb CreateBody
	if err := DecodeBody(st.Create.Body, &cb); err != nil {
		return malformed("bad create body")
	}
	in := authInput{creator: st.Create.User, joinRule: cb.JoinRule, levels: &PowerLevels{}}
	if len(cb.DM) == 32 {
		in.dm, _ = crdt.KeyFromBytes(cb.DM)
		in.isDM = true
	}
	if st.Power != nil {
		if err := DecodeBody(st.Power.Body, in.levels); err != nil {
			return malformed("bad power body in auth state")
		}
	}
	if st.JoinRule != nil {
		var tb TextBody
		if err := DecodeBody(st.JoinRule.Body, &tb); err != nil {
			return malformed("bad join rule body in auth state")
		}
		in.joinRule = tb.Value
	}
	membership := func(u crdt.UserID) string {
		if m := st.Members[u]; m != nil {
			var mb MemberBody
			if DecodeBody(m.Body, &mb) == nil {
				return mb.Membership
			}
		}
		return ""
	}
	pb, err := parseIn(&cb, ev.Type, ev.StateKey, ev.Body)
	if err != nil {
		return err
	}
	if err := checkDeviceStateless(ev, pb); err != nil {
		return err
	}
	in.sender = membership(ev.User)
	if pb.hasTarget {
		in.target = membership(pb.target)
	}
	if ev.Type == TypeRedact && st.Target != nil {
		in.redactKnown = true
		in.redactSender = st.Target.User
		in.redactState = st.Target.StateKey != nil || st.Target.Type == TypeRedact || st.Target.Type == TypeCreate
	}
	_, err = authorize(ev.User, ev.Type, ev.StateKey, pb, &in)
	return err
}

// authInput is the parsed auth state of one check.
type authInput struct {
	creator  crdt.UserID
	dm       crdt.UserID
	isDM     bool
	joinRule string
	levels   *PowerLevels // never nil
	sender   string       // sender's membership ("" = none)
	target   string       // target's membership, for member events

	redactKnown  bool
	redactSender crdt.UserID
	redactState  bool
}

// power returns u's level; the creator has PowerCreator.
func (in *authInput) power(u crdt.UserID) int64 {
	if u == in.creator {
		return PowerCreator
	}
	return in.levels.UserLevel(u)
}

func (in *authInput) senderMembership(u crdt.UserID) string {
	if in.sender == "" && u == in.creator {
		return Join // the creator is joined from the create event on
	}
	return in.sender
}

func (in *authInput) targetMembership(t crdt.UserID) string {
	if in.target == "" && t == in.creator {
		return Join
	}
	return in.target
}

// parsed is the decoded body of an event, as far as the rules need it.
type parsed struct {
	membership   string
	target       crdt.UserID
	hasTarget    bool
	text         string
	levels       *PowerLevels
	limits       *LimitsBody
	profile      *ProfileBody
	member       *MemberBody
	device       *DeviceBody
	redactTarget crdt.EventID
}

// parseBody decodes what the rules need from a body. It fails only for
// malformed control events; message bodies are never decoded.
func parseBody(typ string, skey *string, body []byte) (*parsed, error) {
	p := &parsed{}
	switch typ {
	case TypeCreate:
		return nil, malformed("create event inside a room")
	case TypeMember:
		if skey == nil {
			return nil, malformed("member event without state key")
		}
		t, err := crdt.ParseKey(*skey)
		if err != nil {
			return nil, malformed("member state key is not a user")
		}
		var mb MemberBody
		if err := DecodeBody(body, &mb); err != nil {
			return nil, malformed("bad member body")
		}
		if len(mb.Work) > MaxWorkLen {
			return nil, malformed("member work longer than %d bytes", MaxWorkLen)
		}
		p.membership, p.target, p.hasTarget, p.member = mb.Membership, t, true, &mb
	case TypePower:
		if skey == nil || *skey != "" {
			return nil, malformed("power event needs the empty state key")
		}
		var pl PowerLevels
		if err := DecodeBody(body, &pl); err != nil {
			return nil, malformed("bad power body")
		}
		for k := range pl.Users {
			if _, err := crdt.ParseKey(k); err != nil {
				return nil, malformed("power body names a non-user")
			}
		}
		p.levels = &pl
	case TypeJoinRule, TypeName, TypeTopic, TypeAvatar:
		if skey == nil || *skey != "" {
			return nil, malformed("%s event needs the empty state key", typ)
		}
		var tb TextBody
		if err := DecodeBody(body, &tb); err != nil {
			return nil, malformed("bad %s body", typ)
		}
		p.text = tb.Value
	case TypeLimits:
		lb, err := parseLimits(skey, body)
		if err != nil {
			return nil, err
		}
		p.limits = lb
	case TypeProfile:
		if skey == nil {
			return nil, malformed("profile event without state key")
		}
		var pr ProfileBody
		if err := DecodeBody(body, &pr); err != nil {
			return nil, malformed("bad profile body")
		}
		p.profile = &pr
	case TypeDevice:
		if skey == nil {
			return nil, malformed("device event without state key")
		}
		if _, err := crdt.ParseKey(*skey); err != nil {
			return nil, malformed("device state key is not a device")
		}
		var db DeviceBody
		if err := DecodeBody(body, &db); err != nil {
			return nil, malformed("bad device body")
		}
		p.device = &db
	case TypeRotate, TypeKeyFwd:
		if skey != nil {
			return nil, malformed("%s event with a state key", typ)
		}
	case TypeRedact:
		if skey != nil {
			return nil, malformed("redact event with a state key")
		}
		var rb RedactBody
		if err := DecodeBody(body, &rb); err != nil {
			return nil, malformed("bad redact body")
		}
		id, err := crdt.IDFromBytes(rb.Target)
		if err != nil {
			return nil, malformed("redact target is not an event id")
		}
		p.redactTarget = id
	}
	return p, nil
}

// authorize applies the rules. It returns the lowest sender level with which
// the event would still be allowed (used by strong removal: a demotion
// invalidates concurrent events that needed more than the new level).
func authorize(sender crdt.UserID, typ string, skey *string, p *parsed, in *authInput) (int64, error) {
	mine := in.power(sender)
	sm := in.senderMembership(sender)
	lv := in.levels
	switch typ {
	case TypeMember:
		return authMember(sender, mine, sm, p, in)
	case TypePower:
		if sm != Join {
			return 0, refuse("sender is not joined")
		}
		return authPower(sender, mine, lv, p.levels, in)
	case TypeProfile:
		if *skey != sender.String() {
			return 0, refuse("profile of another user")
		}
	case TypeJoinRule:
		switch p.text {
		case Private, Public, KnockRule:
		default:
			return 0, refuse("unknown join rule %q", p.text)
		}
	case TypeRedact:
		if sm != Join {
			return 0, refuse("sender is not joined")
		}
		if !in.redactKnown {
			return 0, refuse("redaction target is not in the event's past")
		}
		if in.redactState {
			return 0, refuse("cannot redact state, create or redact events")
		}
		need := lv.EventLevel(TypeRedact, false)
		if in.redactSender != sender {
			need = max(need, lv.RedactLevel())
			if mine < need {
				return need, refuse("power %d below redact level %d", mine, need)
			}
		} else if mine < need {
			return need, refuse("power %d below level %d for %s", mine, need, typ)
		}
		return need, nil
	}
	if sm != Join {
		return 0, refuse("sender is not joined")
	}
	need := lv.EventLevel(typ, skey != nil)
	if mine < need {
		return need, refuse("power %d below level %d for %s", mine, need, typ)
	}
	return need, nil
}

func authMember(sender crdt.UserID, mine int64, sm string, p *parsed, in *authInput) (int64, error) {
	t := p.target
	tm := in.targetMembership(t)
	lv := in.levels
	self := t == sender
	switch p.membership {
	case Join:
		if !self {
			return 0, refuse("cannot join on behalf of another user")
		}
		switch {
		case tm == Ban:
			return 0, refuse("sender is banned")
		case tm == Join || tm == Invite:
			return 0, nil // join, or a profile change of a joined member
		case sender == in.creator:
			return 0, nil // the creator may always come back
		case in.isDM && sender == in.dm:
			return 0, nil
		case in.joinRule == Public:
			return 0, nil
		}
		return 0, refuse("join needs an invite")
	case Knock:
		if !self {
			return 0, refuse("cannot knock on behalf of another user")
		}
		switch {
		case in.joinRule != KnockRule:
			return 0, refuse("room does not allow knocking")
		case tm == Ban:
			return 0, refuse("sender is banned")
		case tm == Join:
			return 0, refuse("sender is already joined")
		}
		return 0, nil
	case Invite:
		switch {
		case sm != Join:
			return 0, refuse("sender is not joined")
		case tm == Ban:
			return 0, refuse("target is banned")
		case tm == Join:
			return 0, refuse("target is already joined")
		case mine < lv.InviteLevel():
			return lv.InviteLevel(), refuse("power %d below invite level %d", mine, lv.InviteLevel())
		}
		return lv.InviteLevel(), nil
	case Leave:
		if self {
			switch tm {
			case Join, Invite, Knock:
				return 0, nil
			case Ban:
				return 0, refuse("sender is banned")
			}
			return 0, refuse("sender is not in the room")
		}
		if sm != Join {
			return 0, refuse("sender is not joined")
		}
		if tm == Ban { // unban
			if mine < lv.BanLevel() {
				return lv.BanLevel(), refuse("power %d below ban level %d", mine, lv.BanLevel())
			}
			return lv.BanLevel(), nil
		}
		if t == in.creator {
			return 0, refuse("the creator cannot be kicked")
		}
		if tm != Join && tm != Invite && tm != Knock {
			return 0, refuse("target is not in the room")
		}
		need := max(lv.KickLevel(), in.power(t)+1)
		if mine < lv.KickLevel() {
			return need, refuse("power %d below kick level %d", mine, lv.KickLevel())
		}
		if mine <= in.power(t) {
			return need, refuse("cannot kick a user of equal or higher power")
		}
		return need, nil
	case Ban:
		switch {
		case sm != Join:
			return 0, refuse("sender is not joined")
		case self:
			return 0, refuse("cannot ban yourself")
		case t == in.creator:
			return 0, refuse("the creator cannot be banned")
		}
		need := max(lv.BanLevel(), in.power(t)+1)
		if mine < lv.BanLevel() {
			return need, refuse("power %d below ban level %d", mine, lv.BanLevel())
		}
		if mine <= in.power(t) {
			return need, refuse("cannot ban a user of equal or higher power")
		}
		return need, nil
	}
	return 0, refuse("unknown membership %q", p.membership)
}

// authPower applies Matrix's level rules: a sender may change only levels
// below its own (and its own, downwards), and never to above its own.
func authPower(sender crdt.UserID, mine int64, old, nw *PowerLevels, in *authInput) (int64, error) {
	need := old.EventLevel(TypePower, true)
	if mine < need {
		return need, refuse("power %d below level %d for %s", mine, need, TypePower)
	}
	if _, ok := nw.Users[in.creator.String()]; ok {
		return need, refuse("cannot set the creator's level")
	}
	// Users whose level changes: the union of both tables (defaults apply).
	users := map[string]bool{}
	for u := range old.Users {
		users[u] = true
	}
	for u := range nw.Users {
		users[u] = true
	}
	var err error
	for _, us := range sortedKeys(users) {
		u, _ := crdt.ParseKey(us)
		if u == in.creator {
			continue
		}
		o, n := old.UserLevel(u), nw.UserLevel(u)
		if o == n {
			continue
		}
		need = max(need, n)
		if u != sender {
			need = max(need, o+1)
			if o >= mine && err == nil {
				err = refuse("cannot change the level of a user at or above your own")
			}
		}
		if n > mine && err == nil {
			err = refuse("cannot raise a level above your own")
		}
	}
	check := func(o, n int64) {
		if o == n {
			return
		}
		need = max(need, o, n)
		if err == nil && o > mine {
			err = refuse("cannot change a level above your own")
		}
		if err == nil && n > mine {
			err = refuse("cannot raise a level above your own")
		}
	}
	check(old.UsersDefault, nw.UsersDefault)
	check(old.EventsDefault, nw.EventsDefault)
	check(old.StateLevel(), nw.StateLevel())
	check(old.InviteLevel(), nw.InviteLevel())
	check(old.KickLevel(), nw.KickLevel())
	check(old.BanLevel(), nw.BanLevel())
	check(old.RedactLevel(), nw.RedactLevel())
	types := map[string]bool{}
	for t := range old.Events {
		types[t] = true
	}
	for t := range nw.Events {
		types[t] = true
	}
	for _, t := range sortedKeys(types) {
		o, ok1 := old.Events[t]
		n, ok2 := nw.Events[t]
		if ok1 != ok2 || o != n {
			// An absent entry means the type's default level.
			if !ok1 {
				o = old.EventLevel(t, t != TypeMessage && t != TypeRedact)
			}
			if !ok2 {
				n = nw.EventLevel(t, t != TypeMessage && t != TypeRedact)
			}
			check(o, n)
		}
	}
	return need, err
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

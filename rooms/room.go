package rooms

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/parley-p2p/parley/crdt"
)

// Member is one user's entry in a room's state.
type Member struct {
	User        crdt.UserID
	Membership  string
	Power       int64 // PowerCreator for the creator
	Role        string
	Creator     bool
	DisplayName string
	Avatar      string // media CID string
}

// State is a room's resolved state at the current heads.
type State struct {
	Room     crdt.RoomID
	Creator  crdt.UserID
	Name     string
	Topic    string
	Avatar   string
	JoinRule string
	History  string
	DM       *crdt.UserID
	Levels   PowerLevels // the current power event's body (zero value: defaults)
	Members  []Member    // everyone with a membership, sorted by user
}

// Member returns u's entry (membership "" when u never appeared).
func (s *State) Member(u crdt.UserID) Member {
	for _, m := range s.Members {
		if m.User == u {
			return m
		}
	}
	return Member{User: u, Role: RoleMember}
}

// Delta is what applying an event changed in the visible timeline.
type Delta struct {
	Shown    []crdt.EventID // newly visible events
	Hidden   []crdt.EventID // events that were visible and are no longer
	Redacted []crdt.EventID // events newly redacted: purge their bodies
}

// state keys of the snapshot map
const (
	kCreate   = TypeCreate + "\x00"
	kPower    = TypePower + "\x00"
	kJoinRule = TypeJoinRule + "\x00"
	kLimits   = TypeLimits + "\x00"
)

func stateKey(typ, skey string) string { return typ + "\x00" + skey }

// evInfo is what a Room keeps per event, by dense index.
type evInfo struct {
	ev       *crdt.Event
	prev     []int32
	auth     []int32
	before   *snap // S(E), the resolved state before the event
	after    *snap // S'(E)
	causalOK bool  // passed R2 here (parents known, depth, self chain, room)
	accepted bool  // passed R2 and R3
	reason   string
	key      string // snapshot key of a state event, "" otherwise
	pred     int32  // before[key] for state events, else -1
	powerRef int32  // before[power], -1 if none
	senderPL int64  // sender's level at S(E)
	required int64  // lowest sender level that still allows E (R5 demotions)
	body     *parsed
	control  bool            // a power event in the sense of state resolution
	targets  []removalTarget // non-empty iff an accepted removal (R5)
	rmIncl   *rmSet          // removals in past(E) plus E itself if a removal
	reach    *rmSet          // fork-group members in past(E) plus E itself if one
	view     *forkView       // the forks S(E) knows (nil: none)
	cuts     *rmSet          // key-layer cuts in past(E) plus E itself if one (keys.go)
	keys     *keyParsed      // what the key layer decoded (encrypted rooms)
	epochAt  int32           // the epoch event checkEpochUse found in past(E) (keys.go); 0: none
	vv       map[crdt.DeviceID]uint64
	// Join proof of work across concurrency (work.go, workHides): work is
	// the zero bits of a stranger's own join or knock (neither joined nor
	// invited before it; 0 without work), -1 for every other event;
	// workReq is the join_work of an accepted room.limits event, 0 if none.
	work    int
	workReq int64
}

// Room is the state machine of one room. Feed it events in a causal order
// (each after all its prev and auth references); every causal order of the
// same set of events gives the same state, visibility and timeline.
type Room struct {
	create *crdt.Event
	cbody  CreateBody
	dm     *crdt.UserID

	ids   map[crdt.EventID]int32
	evs   []*evInfo
	heads map[int32]struct{}

	curVer, headsVer uint64
	cur              *snap
	snapSeq          uint64
	snapIDs          map[*snap]uint64
	resCache         map[[32]byte]*snap
	resWeight        int    // 1 per cached result plus the keys it changed (resolve.go)
	resLookups       uint64 // key lookups state resolution made (tests check it stays near linear)

	userKeys map[crdt.UserID]string // member state keys

	ov overlay
	fk forkState // forks known to states, and the void sets (equivocation.go)

	keys keyState // the key layer (keys.go)

	redactions map[int32][]int32 // target -> accepted redactions naming it
	redacted   map[int32]bool    // targets of visible redactions

	stamp   uint32
	visited []uint32

	// A room made by Overlay reads through to a frozen base (base.go):
	// events [0, nb) are the base's (mod holds the copies of those this
	// room changed), evs and ids hold only the events after them. nil
	// base: a plain room, nb 0.
	base   *Room
	nb     int32
	mod    map[int32]*evInfo
	frozen bool   // Freeze was called: nothing may change this room
	guard  *Guard // a frozen base's guard, for its overlays (Freeze, Guard)
}

// New starts a room from its create event.
func New(create *crdt.Event) (*Room, error) {
	if create.Type != TypeCreate {
		return nil, fmt.Errorf("%w: not a create event", ErrBadEvent)
	}
	var body CreateBody
	if err := DecodeBody(create.Body, &body); err != nil {
		return nil, err
	}
	switch body.JoinRule {
	case "":
		body.JoinRule = Private
	case Private, Public, KnockRule:
	default:
		return nil, fmt.Errorf("%w: unknown join rule %q", ErrBadEvent, body.JoinRule)
	}
	r := &Room{
		create:     create,
		cbody:      body,
		ids:        map[crdt.EventID]int32{},
		heads:      map[int32]struct{}{},
		snapIDs:    map[*snap]uint64{},
		resCache:   map[[32]byte]*snap{},
		userKeys:   map[crdt.UserID]string{},
		redactions: map[int32][]int32{},
		redacted:   map[int32]bool{},
	}
	if len(body.DM) == 32 {
		u, _ := crdt.KeyFromBytes(body.DM)
		r.dm = &u
	}
	r.ov.init()
	r.fk.init()
	r.keys.init()
	s := emptySnap.set(kCreate, 0)
	info := &evInfo{ev: create, before: emptySnap, after: s, causalOK: true, accepted: true, pred: -1, powerRef: -1, senderPL: PowerCreator, rmIncl: &rmSet{}, reach: noSet, cuts: noCuts, work: -1}
	r.ids[create.ID] = 0
	r.evs = append(r.evs, info)
	r.heads[0] = struct{}{}
	r.headsVer++
	return r, nil
}

// ID returns the room ID.
func (r *Room) ID() crdt.RoomID { return r.create.ID }

// Has reports whether an event was applied (whatever the room decided).
func (r *Room) Has(id crdt.EventID) bool { _, ok := r.ids[id]; return ok }

// Len returns the number of events applied, the create event included.
func (r *Room) Len() int { return int(r.nb) + len(r.evs) }

func (r *Room) userKey(u crdt.UserID) string {
	if k, ok := sharedUserKey(u); ok {
		return k
	}
	k, ok := r.userKeys[u]
	if !ok {
		k = stateKey(TypeMember, u.String())
		r.userKeys[u] = k
	}
	return k
}

func (r *Room) snapID(s *snap) uint64 {
	id, ok := r.snapIDs[s]
	if !ok {
		r.snapSeq++
		id = r.snapSeq
		r.snapIDs[s] = id
	}
	return id
}

// Apply takes the next event in causal order and returns what changed in
// the visible timeline. Applying an event twice is a no-op.
func (r *Room) Apply(e *crdt.Event) Delta {
	if r.frozen {
		panic("rooms: Apply to a frozen room")
	}
	if _, ok := r.idx(e.ID); ok {
		return Delta{}
	}
	idx := int32(r.Len())
	info := &evInfo{ev: e, pred: -1, powerRef: -1, before: emptySnap, after: emptySnap, work: -1}
	r.ids[e.ID] = idx
	r.evs = append(r.evs, info)
	defer func() { info.ev = bare(e) }()
	if reason := r.checkCausal(info); reason != "" {
		info.reason = reason
		r.fk.judged = idx + 1
		return Delta{}
	}
	info.causalOK = true
	info.cuts = noCuts
	for _, p := range info.prev {
		info.cuts = union(info.cuts, r.ev(p).cuts)
	}
	newFork := r.registerSeq(idx)
	past := r.pastReach(info.prev)
	info.reach = r.reachOf(idx, past)
	view := r.viewOf(past) // the forks S(E) knows
	info.view = view
	ps := make([]*snap, 0, len(info.prev))
	self := int32(-1)
	if e.Seq > 0 {
		self, _ = r.idx(e.Self)
	}
	for _, p := range info.prev {
		if p == self && len(info.prev) > 1 && r.selfIsAncestor(self, info.prev) {
			continue // the author's own previous event, already in another parent's past
		}
		ps = append(ps, r.cleanAfter(p, view))
	}
	info.before = r.resolve(ps, view)
	info.after = info.before
	r.judge(idx, info)
	if info.accepted && info.key != "" {
		info.after = info.before.set(info.key, idx)
	}
	r.viewsAdd(idx)
	// heads
	for _, p := range info.prev {
		delete(r.heads, p)
	}
	r.heads[idx] = struct{}{}
	r.headsVer++
	return r.ov.add(r, idx, newFork)
}

// bare returns a content event (a message, a receipt: the kinds sealed in
// an encrypted room) without its body, and any other event as it is. The
// room reads a content event's body once, when it judges it (evInfo.body
// keeps what it parsed): it does not hold it after, so that a room of many
// messages does not keep every body in memory (the store has them). The
// envelope stays: the room counts its length (limits.go).
func bare(e *crdt.Event) *crdt.Event {
	if !Sealed(e.Type) || e.Body == nil {
		return e
	}
	c := *e
	c.Body = nil
	return &c
}

// checkCausal applies R2 as far as the room can see it.
func (r *Room) checkCausal(info *evInfo) string {
	e := info.ev
	if e.Type == TypeCreate {
		return "second create event"
	}
	if e.Room != r.create.ID {
		return "event of another room"
	}
	var maxDepth uint64
	for _, p := range e.Prev {
		pi, ok := r.idx(p)
		if !ok {
			return "unknown parent"
		}
		pe := r.ev(pi)
		if !pe.causalOK {
			return "parent rejected: " + pe.reason
		}
		maxDepth = max(maxDepth, pe.ev.Depth)
		info.prev = append(info.prev, pi)
	}
	if len(info.prev) == 0 {
		return "no parents"
	}
	if e.Depth != maxDepth+1 {
		return "wrong depth"
	}
	if e.Seq > 0 {
		si, ok := r.idx(e.Self)
		if !ok || r.ev(si).ev.Device != e.Device || r.ev(si).ev.Seq+1 != e.Seq {
			return "broken self chain"
		}
	}
	for _, a := range e.Auth {
		ai, ok := r.idx(a)
		if !ok {
			return "unknown auth event"
		}
		if !r.ev(ai).causalOK {
			return "auth event rejected: " + r.ev(ai).reason
		}
		info.auth = append(info.auth, ai)
	}
	return ""
}

// judge applies R3: the event must be allowed both by its auth references
// and by the resolved state before it.
func (r *Room) judge(idx int32, info *evInfo) {
	e := info.ev
	info.senderPL = r.levelIn(info.before, e.User)
	p, err := shareBody(e, r.cbody.E2EE, func() (*parsed, error) { return parseIn(&r.cbody, e.Type, e.StateKey, e.Body) })
	if err != nil {
		info.reason = Reason(err)
		return
	}
	info.body = p
	if err := checkDeviceStateless(e, p); err != nil {
		info.reason = Reason(err)
		return
	}
	if e.StateKey != nil {
		info.key = shareKey(stateKey(e.Type, *e.StateKey))
		info.pred = info.before.lookup(info.key)
	}
	info.powerRef = info.before.lookup(kPower)
	info.control = e.Type == TypePower || e.Type == TypeJoinRule || e.Type == TypeLimits ||
		(e.Type == TypeMember && p.target != e.User && (p.membership == Leave || p.membership == Ban)) ||
		(p.device != nil && p.device.Removed)

	// Auth references: known kinds only, one of each, accepted, in the past.
	refs := map[string]int32{}
	allowed := func(k string) bool {
		switch k {
		case kCreate, kPower, kJoinRule, r.userKey(e.User):
			return true
		}
		return p.hasTarget && k == r.userKey(p.target)
	}
	for _, a := range info.auth {
		ai := r.ev(a)
		if !ai.accepted {
			info.reason = "auth event was rejected"
			return
		}
		k := ai.key
		if a == 0 {
			k = kCreate
		}
		if !allowed(k) {
			info.reason = "auth event of the wrong kind"
			return
		}
		if _, dup := refs[k]; dup {
			info.reason = "two auth events of one kind"
			return
		}
		if info.before.lookup(k) != a && !r.isAncestor(a, info.prev) {
			info.reason = "auth event not in the event's past"
			return
		}
		refs[k] = a
	}
	if _, ok := refs[kCreate]; !ok {
		info.reason = "auth events must include the create event"
		return
	}
	var target *evInfo
	if e.Type == TypeRedact {
		if ti, ok := r.idx(p.redactTarget); ok && r.ev(ti).causalOK && r.isAncestor(ti, info.prev) {
			target = r.ev(ti)
		}
	}
	// R3(b): the state before the event.
	in := r.inputFrom(e, p, func(k string) int32 { return info.before.lookup(k) }, target)
	req, err := authorize(e.User, e.Type, e.StateKey, p, &in)
	if err != nil {
		info.reason = Reason(err)
		return
	}
	if why := r.overLimit(info, &in); why != "" {
		info.reason = why
		return
	}
	if e.Type == TypeMember {
		sm := in.senderMembership(e.User)
		if why := joinWork(r.create.ID, e.User, r.limitsIn(info.before.lookup), sm, p); why != "" {
			info.reason = why
			return
		}
		info.work = strangerJoinWork(r.create.ID, e.User, sm, p)
	}
	// R3(a): the auth references alone.
	in = r.inputFrom(e, p, func(k string) int32 {
		if v, ok := refs[k]; ok {
			return v
		}
		return -1
	}, target)
	if _, err := authorize(e.User, e.Type, e.StateKey, p, &in); err != nil {
		info.reason = "auth events do not allow it: " + Reason(err)
		return
	}
	if why := r.judgeKeys(idx, info); why != "" {
		info.reason = why
		return
	}
	info.required = req
	info.accepted = true
	r.keysAccepted(idx, info)
	if target != nil {
		t, _ := r.idx(p.redactTarget)
		r.redactions[t] = append(r.redactions[t], idx)
	}
	info.targets = r.removalTargets(e, p, info.before)
	if p.limits != nil {
		info.workReq = p.limits.JoinWork
	}
}

// inputFrom builds an auth input from a lookup of state keys.
func (r *Room) inputFrom(e *crdt.Event, p *parsed, get func(string) int32, target *evInfo) authInput {
	in := authInput{creator: r.create.User, joinRule: r.cbody.JoinRule, levels: &PowerLevels{}}
	if r.dm != nil {
		in.dm, in.isDM = *r.dm, true
	}
	if v := get(kPower); v >= 0 {
		in.levels = r.ev(v).body.levels
	}
	if v := get(kJoinRule); v >= 0 {
		in.joinRule = r.ev(v).body.text
	}
	if v := get(r.userKey(e.User)); v >= 0 {
		in.sender = r.ev(v).body.membership
	}
	if p.hasTarget {
		if v := get(r.userKey(p.target)); v >= 0 {
			in.target = r.ev(v).body.membership
		}
	}
	if target != nil {
		te := target.ev
		in.redactKnown = true
		in.redactSender = te.User
		in.redactState = te.StateKey != nil || te.Type == TypeRedact || te.Type == TypeCreate
	}
	return in
}

// levelIn returns u's power level in state s.
func (r *Room) levelIn(s *snap, u crdt.UserID) int64 {
	if u == r.create.User {
		return PowerCreator
	}
	if v := s.lookup(kPower); v >= 0 {
		return r.ev(v).body.levels.UserLevel(u)
	}
	return 0
}

// Precedes reports whether event a is in the past of event b, both held by
// the room.
func (r *Room) Precedes(a, b crdt.EventID) bool {
	i, ok := r.idx(a)
	j, ok2 := r.idx(b)
	if !ok || !ok2 || i == j {
		return false
	}
	return r.isAncestor(i, r.ev(j).prev)
}

// isAncestor reports whether a is in the past of the events from.
func (r *Room) isAncestor(a int32, from []int32) bool { return r.reaches(a, from, 0) }

// selfBudget bounds the walk that looks for the author's previous event in
// the past of its other parents. The outcome depends only on the DAG, so
// every node decides alike; beyond the budget the self parent's state simply
// takes part in resolution (correct, only slower).
const selfBudget = 4096

// selfIsAncestor reports whether self is in the past of the other parents,
// looking at most selfBudget events back.
func (r *Room) selfIsAncestor(self int32, prev []int32) bool {
	others := make([]int32, 0, len(prev)-1)
	for _, p := range prev {
		if p != self {
			others = append(others, p)
		}
	}
	return r.reaches(self, others, selfBudget)
}

// reaches walks the past of from (never below a's depth) looking for a,
// visiting at most budget events when budget > 0; an exhausted budget
// counts as not found.
func (r *Room) reaches(a int32, from []int32, budget int) bool {
	d := r.ev(a).ev.Depth
	stack := r.scratch(from)
	for n := 0; len(stack) > 0; n++ {
		if budget > 0 && n == budget {
			return false
		}
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if x == a {
			return true
		}
		xe := r.ev(x)
		if xe.ev.Depth <= d {
			continue
		}
		for _, p := range xe.prev {
			if r.visited[p] != r.stamp {
				r.visited[p] = r.stamp
				stack = append(stack, p)
			}
		}
	}
	return false
}

// scratch starts a graph walk: a fresh visit stamp and a stack holding from.
func (r *Room) scratch(from []int32) []int32 {
	if n := r.Len(); len(r.visited) < n {
		r.visited = append(r.visited, make([]uint32, n-len(r.visited)+1024)...)
	}
	r.stamp++
	if r.stamp == 0 {
		clear(r.visited)
		r.stamp = 1
	}
	stack := make([]int32, 0, 64)
	for _, f := range from {
		if r.visited[f] != r.stamp {
			r.visited[f] = r.stamp
			stack = append(stack, f)
		}
	}
	return stack
}

// current returns the resolved state at the heads.
func (r *Room) current() *snap {
	if r.cur != nil && r.curVer == r.headsVer {
		return r.cur
	}
	hs := make([]int32, 0, len(r.heads))
	for h := range r.heads {
		hs = append(hs, h)
	}
	slices.Sort(hs)
	view := r.allView()
	ps := make([]*snap, len(hs))
	for i, h := range hs {
		ps[i] = r.cleanAfter(h, view)
	}
	r.cur, r.curVer = r.resolve(ps, view), r.headsVer
	return r.cur
}

// Heads returns the room's heads (events without children here), sorted.
func (r *Room) Heads() []crdt.EventID {
	out := make([]crdt.EventID, 0, len(r.heads))
	for h := range r.heads {
		out = append(out, r.ev(h).ev.ID)
	}
	slices.Sort(out)
	return out
}

// Check says whether user may author an event of this type, state key and
// body against the current resolved state (a pre-flight check for local
// commands; events themselves are judged by Apply from their causal past).
// A refusal wraps ErrNotPermitted; Reason(err) gives the reason.
func (r *Room) Check(user crdt.UserID, typ string, skey *string, body []byte) error {
	p, err := parseBody(typ, skey, body)
	if err != nil {
		return err
	}
	cur := r.current()
	var target *evInfo
	if typ == TypeRedact {
		if ti, ok := r.idx(p.redactTarget); ok && r.ev(ti).causalOK {
			target = r.ev(ti)
		}
	}
	e := &crdt.Event{User: user, Type: typ, StateKey: skey}
	in := r.inputFrom(e, p, cur.lookup, target)
	if _, err = authorize(user, typ, skey, p, &in); err != nil {
		return err
	}
	if typ == TypeMember {
		if why := joinWork(r.create.ID, user, r.limitsIn(cur.lookup), in.senderMembership(user), p); why != "" {
			return refuse("%s", why)
		}
	}
	return nil
}

// AuthRefs returns the auth references a new event by user of this type and
// state key must carry, from the current resolved state: the create event,
// the power and join-rule events, the sender's and the target's membership.
func (r *Room) AuthRefs(user crdt.UserID, typ string, skey *string) []crdt.EventID {
	return r.authRefsIn(r.current(), user, typ, skey)
}

// AuthRefsAt is AuthRefs for an event whose parents are prev (all applied).
func (r *Room) AuthRefsAt(prev []crdt.EventID, user crdt.UserID, typ string, skey *string) []crdt.EventID {
	var idx []int32
	for _, p := range prev {
		if i, ok := r.idx(p); ok && r.ev(i).causalOK {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return r.AuthRefs(user, typ, skey)
	}
	return r.authRefsIn(r.stateAt(idx), user, typ, skey)
}

// stateAt is the resolved state after the events prev (all causally valid):
// the state an event with these parents is judged against.
func (r *Room) stateAt(prev []int32) *snap {
	view := r.viewOf(r.pastReach(prev))
	ps := make([]*snap, len(prev))
	for i, p := range prev {
		ps[i] = r.cleanAfter(p, view)
	}
	return r.resolve(ps, view)
}

func (r *Room) authRefsIn(s *snap, user crdt.UserID, typ string, skey *string) []crdt.EventID {
	refs := []crdt.EventID{r.create.ID}
	add := func(k string) {
		if v := s.lookup(k); v >= 0 {
			refs = append(refs, r.ev(v).ev.ID)
		}
	}
	add(kPower)
	add(r.userKey(user))
	if typ == TypeMember && skey != nil {
		add(kJoinRule)
		if t, err := crdt.ParseKey(*skey); err == nil {
			add(r.userKey(t))
		}
	}
	slices.Sort(refs)
	return slices.Compact(refs)
}

// State returns the resolved state at the current heads.
func (r *Room) State() State { return r.stateOf(r.current()) }

// MembershipOf is one user's current membership ("" if never a member),
// without building the whole State: O(log members).
func (r *Room) MembershipOf(u crdt.UserID) string {
	if v := r.current().lookup(r.userKey(u)); v >= 0 {
		return r.ev(v).body.membership
	}
	if u == r.create.User {
		return Join
	}
	return ""
}

// JoinRule is the room's current join rule.
func (r *Room) JoinRule() string {
	if v := r.current().lookup(kJoinRule); v >= 0 {
		return r.ev(v).body.text
	}
	return r.cbody.JoinRule
}

func (r *Room) stateOf(s *snap) State {
	st := State{Room: r.create.ID, Creator: r.create.User, Name: r.cbody.Name, Topic: r.cbody.Topic,
		JoinRule: r.cbody.JoinRule, History: r.cbody.History, DM: r.dm}
	if v := s.lookup(kPower); v >= 0 {
		st.Levels = *r.ev(v).body.levels
	}
	members := map[crdt.UserID]*Member{}
	get := func(u crdt.UserID) *Member {
		m := members[u]
		if m == nil {
			m = &Member{User: u}
			members[u] = m
		}
		return m
	}
	get(r.create.User).Membership = Join
	var profiles []*evInfo
	s.each(func(k string, v int32) {
		ei := r.ev(v)
		switch ei.ev.Type {
		case TypeMember:
			m := get(ei.body.target)
			m.Membership = ei.body.membership
			if ei.body.target == ei.ev.User {
				m.DisplayName, m.Avatar = ei.body.member.DisplayName, ei.body.member.Avatar
			}
		case TypeProfile:
			profiles = append(profiles, ei)
		case TypeName:
			st.Name = ei.body.text
		case TypeTopic:
			st.Topic = ei.body.text
		case TypeAvatar:
			st.Avatar = ei.body.text
		case TypeJoinRule:
			st.JoinRule = ei.body.text
		}
	})
	for _, ei := range profiles {
		if m := members[ei.ev.User]; m != nil {
			m.DisplayName, m.Avatar = ei.body.profile.DisplayName, ei.body.profile.Avatar
		}
	}
	for _, m := range members {
		m.Creator = m.User == r.create.User
		if m.Creator {
			m.Power = PowerCreator
		} else {
			m.Power = st.Levels.UserLevel(m.User)
		}
		m.Role = RoleOf(m.Power, m.Creator)
		st.Members = append(st.Members, *m)
	}
	slices.SortFunc(st.Members, func(a, b Member) int { return slices.Compare(a.User[:], b.User[:]) })
	return st
}

// StateHash is a digest of the resolved state at the heads: the sorted
// (state key, event ID) pairs. Equal event sets give equal hashes.
func (r *Room) StateHash() [32]byte {
	type kv struct {
		k  string
		id crdt.EventID
	}
	var all []kv
	r.current().each(func(k string, v int32) { all = append(all, kv{k, r.ev(v).ev.ID}) })
	slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(a.k, b.k) })
	h := sha256.New()
	var n [8]byte
	for _, x := range all {
		binary.BigEndian.PutUint64(n[:], uint64(len(x.k)))
		h.Write(n[:])
		h.Write([]byte(x.k))
		h.Write([]byte(x.id))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Timeline returns the visible events (accepted and not hidden by strong
// removal or equivocation) in (depth, ID) order, the create event first.
func (r *Room) Timeline() []crdt.EventID {
	var vis []*crdt.Event
	for i := range int32(r.Len()) {
		if r.visible(i) {
			vis = append(vis, r.ev(i).ev)
		}
	}
	slices.SortFunc(vis, func(a, b *crdt.Event) int {
		if c := cmp.Compare(a.Depth, b.Depth); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	out := make([]crdt.EventID, len(vis))
	for i, e := range vis {
		out[i] = e.ID
	}
	return out
}

// VisibleHash is a digest of the timeline and of which of its events are
// redacted. Equal event sets give equal hashes.
func (r *Room) VisibleHash() [32]byte {
	h := sha256.New()
	for _, id := range r.Timeline() {
		h.Write([]byte(id))
		if r.Redacted(id) {
			h.Write([]byte{1})
		} else {
			h.Write([]byte{0})
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func (r *Room) visible(i int32) bool {
	return r.ev(i).accepted && !r.ov.hidden(i)
}

// Visible reports whether an applied event shows in the timeline, and if
// not, why (the auth rule that refused it, or the overlay that hides it).
func (r *Room) Visible(id crdt.EventID) (bool, string) {
	i, ok := r.idx(id)
	if !ok {
		return false, "unknown event"
	}
	ei := r.ev(i)
	if !ei.accepted {
		return false, ei.reason
	}
	if c, ok := r.ov.cause[i]; ok {
		return false, c.reason
	}
	return true, ""
}

// Accepted reports whether an event passed the auth rules (R2, R3), whether
// or not strong removal hides it.
func (r *Room) Accepted(id crdt.EventID) bool {
	i, ok := r.idx(id)
	return ok && r.ev(i).accepted
}

// Redacted reports whether a visible redaction names the event; its body
// should be purged.
func (r *Room) Redacted(id crdt.EventID) bool {
	i, ok := r.idx(id)
	return ok && r.redacted[i]
}

// Redactions returns the events a visible redaction names, sorted.
func (r *Room) Redactions() []crdt.EventID {
	out := make([]crdt.EventID, 0, len(r.redacted))
	for i := range r.redacted {
		out = append(out, r.ev(i).ev.ID)
	}
	slices.Sort(out)
	return out
}

// updateRedactions recomputes the redacted set and reports new entries.
func (r *Room) updateRedactions(d *Delta) {
	for t, rs := range r.redactions {
		if r.redacted[t] {
			continue
		}
		for _, x := range rs {
			if r.visible(x) {
				r.redacted[t] = true
				d.Redacted = append(d.Redacted, r.ev(t).ev.ID)
				break
			}
		}
	}
	for t := range r.redacted {
		still := false
		for _, x := range r.redactions[t] {
			if r.visible(x) {
				still = true
				break
			}
		}
		if !still {
			delete(r.redacted, t) // the body may be gone already; it stays gone
		}
	}
	slices.Sort(d.Redacted)
}

package rooms

import (
	"errors"
	"fmt"
	"slices"

	"github.com/parley-p2p/parley/crdt"
)

// Errors.
var (
	ErrNoBody       = errors.New("rooms: body not available")
	ErrNotPermitted = errors.New("rooms: not permitted")
	ErrBadEvent     = errors.New("rooms: malformed event")
)

// Power levels of the named roles.
const (
	PowerAdmin     = 100
	PowerModerator = 50
	PowerMember    = 0
)

// Member is one user's entry in a room's state.
type Member struct {
	User        crdt.UserID
	Membership  string
	Power       int64
	Creator     bool
	DisplayName string
	Avatar      string
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
	Members  []Member // sorted by user
}

// Member returns u's entry (membership "" when u never appeared).
func (s *State) Member(u crdt.UserID) Member {
	for _, m := range s.Members {
		if m.User == u {
			return m
		}
	}
	return Member{User: u}
}

// Delta is what applying an event changed in the visible timeline.
type Delta struct {
	Shown  []crdt.EventID // newly visible events
	Hidden []crdt.EventID // events that were visible and are no longer
}

// Room is the state machine of one room. Feed it accepted events in a causal
// order (each after all its prev and auth references).
type Room struct {
	create  *crdt.Event
	state   State
	members map[crdt.UserID]*Member
	verdict map[crdt.EventID]string // "" = visible
	stateOf map[stateKey]crdt.EventID
}

type stateKey struct{ typ, key string }

// New starts a room from its create event.
func New(create *crdt.Event) (*Room, error) {
	if create.Type != TypeCreate {
		return nil, fmt.Errorf("%w: not a create event", ErrBadEvent)
	}
	var body CreateBody
	if err := DecodeBody(create.Body, &body); err != nil {
		return nil, err
	}
	r := &Room{
		create:  create,
		members: map[crdt.UserID]*Member{},
		verdict: map[crdt.EventID]string{create.ID: ""},
		stateOf: map[stateKey]crdt.EventID{},
	}
	r.state = State{Room: create.ID, Creator: create.User, Name: body.Name, Topic: body.Topic, JoinRule: body.JoinRule, History: body.History}
	if len(body.DM) == 32 {
		u, _ := crdt.KeyFromBytes(body.DM)
		r.state.DM = &u
	}
	r.members[create.User] = &Member{User: create.User, Membership: Join, Power: PowerAdmin, Creator: true}
	return r, nil
}

// Apply takes the next accepted event in causal order.
func (r *Room) Apply(e *crdt.Event) Delta {
	if e.Type == TypeCreate {
		return Delta{}
	}
	if err := r.authorize(e.User, e.Type, e.StateKey, e.Body); err != nil {
		r.verdict[e.ID] = err.Error()
		return Delta{}
	}
	r.verdict[e.ID] = ""
	r.applyState(e)
	return Delta{Shown: []crdt.EventID{e.ID}}
}

func (r *Room) applyState(e *crdt.Event) {
	if e.StateKey == nil {
		return
	}
	r.stateOf[stateKey{e.Type, *e.StateKey}] = e.ID
	switch e.Type {
	case TypeMember:
		var b MemberBody
		if DecodeBody(e.Body, &b) != nil {
			return
		}
		target, _ := crdt.ParseKey(*e.StateKey)
		m := r.member(target)
		m.Membership = b.Membership
		if b.DisplayName != "" {
			m.DisplayName = b.DisplayName
		}
	case TypeName, TypeTopic, TypeAvatar, TypeJoinRule:
		var b TextBody
		if DecodeBody(e.Body, &b) != nil {
			return
		}
		switch e.Type {
		case TypeName:
			r.state.Name = b.Value
		case TypeTopic:
			r.state.Topic = b.Value
		case TypeAvatar:
			r.state.Avatar = b.Value
		case TypeJoinRule:
			r.state.JoinRule = b.Value
		}
	}
}

func (r *Room) member(u crdt.UserID) *Member {
	m, ok := r.members[u]
	if !ok {
		m = &Member{User: u}
		r.members[u] = m
	}
	return m
}

// Check says whether user may author an event of this type, state key and
// body now (a pre-flight check for local commands; peers' events are judged
// by Apply).
func (r *Room) Check(user crdt.UserID, typ string, skey *string, body []byte) error {
	return r.authorize(user, typ, skey, body)
}

func (r *Room) authorize(user crdt.UserID, typ string, skey *string, body []byte) error {
	sender := r.member(user)
	switch typ {
	case TypeMember:
		if skey == nil {
			return fmt.Errorf("%w: member event without state key", ErrBadEvent)
		}
		var b MemberBody
		if err := DecodeBody(body, &b); err != nil {
			return err
		}
		target, err := crdt.ParseKey(*skey)
		if err != nil {
			return fmt.Errorf("%w: member state key", ErrBadEvent)
		}
		if target == user && b.Membership == Join {
			if sender.Membership == Join || sender.Membership == Invite || r.state.JoinRule == Public {
				return nil
			}
			return fmt.Errorf("%w: join needs an invite in a private room", ErrNotPermitted)
		}
		if sender.Membership != Join {
			return fmt.Errorf("%w: sender is not joined", ErrNotPermitted)
		}
		return nil
	default:
		if sender.Membership != Join {
			return fmt.Errorf("%w: sender is not joined", ErrNotPermitted)
		}
		return nil
	}
}

// AuthRefs returns the auth references a new event by user of this type and
// state key must carry: the create event, the sender's membership, the power
// and join-rule events, and the target's membership.
func (r *Room) AuthRefs(user crdt.UserID, typ string, skey *string) []crdt.EventID {
	refs := []crdt.EventID{r.create.ID}
	add := func(t, k string) {
		if id, ok := r.stateOf[stateKey{t, k}]; ok {
			refs = append(refs, id)
		}
	}
	add(TypeMember, user.String())
	add(TypePower, "")
	add(TypeJoinRule, "")
	if typ == TypeMember && skey != nil {
		add(TypeMember, *skey)
	}
	slices.Sort(refs)
	return slices.Compact(refs)
}

// State returns the resolved state.
func (r *Room) State() State {
	s := r.state
	s.Members = make([]Member, 0, len(r.members))
	for _, m := range r.members {
		if m.Membership != "" {
			s.Members = append(s.Members, *m)
		}
	}
	slices.SortFunc(s.Members, func(a, b Member) int { return slices.Compare(a.User[:], b.User[:]) })
	return s
}

// Visible reports whether an applied event shows in the timeline, and if not, why.
func (r *Room) Visible(id crdt.EventID) (bool, string) {
	v, ok := r.verdict[id]
	if !ok {
		return false, "unknown event"
	}
	return v == "", v
}

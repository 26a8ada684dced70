package rooms

import (
	"fmt"
	"math"

	"github.com/parley-p2p/parley/crdt"
)

// Event types.
const (
	TypeCreate   = crdt.TypeCreate
	TypeMember   = "member"    // state key: the target user ID (crdt.UserID.String())
	TypePower    = "power"     // state key: ""
	TypeJoinRule = "join_rule" // state key: ""
	TypeName     = "room.name" // state key: ""
	TypeTopic    = "room.topic"
	TypeAvatar   = "room.avatar"
	TypeProfile  = "profile" // state key: the author's own user ID
	TypeMessage  = "message"
	TypeRedact   = "redact"
)

// Memberships.
const (
	Invite = "invite"
	Join   = "join"
	Leave  = "leave"
	Ban    = "ban"
	Knock  = "knock"
)

// Join rules.
const (
	Private   = "private" // invite only (the default)
	Public    = "public"
	KnockRule = "knock" // invite only, but anyone may knock
)

// History policies.
const (
	HistoryShared = "shared"
	HistoryJoined = "joined"
)

// Power levels of the named roles. The creator's level is PowerCreator,
// above every level a power event can grant.
const (
	PowerAdmin     = 100
	PowerModerator = 50
	PowerMember    = 0
	PowerCreator   = math.MaxInt64
)

// Roles, as shown in State.Members.
const (
	RoleCreator   = "creator"
	RoleAdmin     = "admin"
	RoleModerator = "moderator"
	RoleMember    = "member"
)

// RoleOf names the role of a power level.
func RoleOf(level int64, creator bool) string {
	switch {
	case creator:
		return RoleCreator
	case level >= PowerAdmin:
		return RoleAdmin
	case level >= PowerModerator:
		return RoleModerator
	default:
		return RoleMember
	}
}

// CreateBody is the body of a create event: the room's founding parameters.
type CreateBody struct {
	Name     string `cbor:"name,omitempty"`
	Topic    string `cbor:"topic,omitempty"`
	JoinRule string `cbor:"join_rule"`
	History  string `cbor:"history"`
	DM       []byte `cbor:"dm,omitempty"` // the other user of a direct-message room; may join without an invite
	Nonce    []byte `cbor:"nonce,omitempty"`
	// E2EE makes the room end-to-end encrypted (keys.go): content events
	// are sealed under key epochs; control events stay readable.
	E2EE bool `cbor:"e2ee,omitempty"`
}

// MemberBody is the body of a member event (state key = target user).
// DisplayName and Avatar are the target's profile in this room when the
// member event is the target's own; a profile event overrides them.
type MemberBody struct {
	Membership  string `cbor:"membership"`
	Reason      string `cbor:"reason,omitempty"`
	DisplayName string `cbor:"displayname,omitempty"`
	Avatar      string `cbor:"avatar,omitempty"`
	// Rotation is the e2ee.Rotation a kick or ban of a joined member
	// carries in an encrypted room (keys.go).
	Rotation []byte `cbor:"rotation,omitempty"`
	// Work is the join proof of work (work.go) of a join or knock in a
	// room that asks for it; at most MaxWorkLen bytes.
	Work []byte `cbor:"work,omitempty"`
}

// TextBody is the body of a state event holding one string (name, topic, avatar, join rule).
type TextBody struct {
	Value string `cbor:"value"`
}

// ProfileBody is the body of a profile event (state key = the author's own
// user ID): display name and avatar (a media CID string).
type ProfileBody struct {
	DisplayName string `cbor:"displayname,omitempty"`
	Avatar      string `cbor:"avatar,omitempty"`
}

// MessageBody is the body of a message event.
type MessageBody struct {
	Text string `cbor:"text"`
}

// RedactBody is the body of a redact event: the event whose body is to be
// purged (a non-state event in the redaction's causal past).
type RedactBody struct {
	Target []byte `cbor:"target"` // crdt.EventID bytes
	Reason string `cbor:"reason,omitempty"`
}

// PowerLevels is the body of a power event and the room's level table.
// A zero field means "the default"; use Get-style methods, not the fields,
// to read effective levels. Users are keyed by crdt.UserID.String().
type PowerLevels struct {
	Users         map[string]int64 `cbor:"users,omitempty"`
	UsersDefault  int64            `cbor:"users_default,omitempty"`
	Events        map[string]int64 `cbor:"events,omitempty"` // per event type, state or not
	StateDefault  *int64           `cbor:"state_default,omitempty"`
	EventsDefault int64            `cbor:"events_default,omitempty"`
	Invite        *int64           `cbor:"invite,omitempty"`
	Kick          *int64           `cbor:"kick,omitempty"`
	Ban           *int64           `cbor:"ban,omitempty"`
	Redact        *int64           `cbor:"redact,omitempty"`
}

// Default levels for actions a power event leaves unset.
const (
	DefaultInvite = PowerModerator
	DefaultKick   = PowerModerator
	DefaultBan    = PowerModerator
	DefaultRedact = PowerModerator
	DefaultState  = PowerModerator
	DefaultPower  = PowerAdmin // level to send a power event unless Events["power"] says otherwise
)

// Level returns p if set, else def.
func level(p *int64, def int64) int64 {
	if p == nil {
		return def
	}
	return *p
}

// Lvl returns a pointer to v, for filling PowerLevels.
func Lvl(v int64) *int64 { return &v }

// InviteLevel, KickLevel, BanLevel and RedactLevel are the effective action levels.
func (p *PowerLevels) InviteLevel() int64 { return level(p.Invite, DefaultInvite) }
func (p *PowerLevels) KickLevel() int64   { return level(p.Kick, DefaultKick) }
func (p *PowerLevels) BanLevel() int64    { return level(p.Ban, DefaultBan) }
func (p *PowerLevels) RedactLevel() int64 { return level(p.Redact, DefaultRedact) }

// StateLevel is the default level for state events not named in Events.
func (p *PowerLevels) StateLevel() int64 { return level(p.StateDefault, DefaultState) }

// EventLevel is the level needed to send an event of this type.
func (p *PowerLevels) EventLevel(typ string, state bool) int64 {
	if v, ok := p.Events[typ]; ok {
		return v
	}
	switch {
	case typ == TypePower:
		return DefaultPower
	case typ == TypeProfile || typ == TypeDevice:
		return p.EventsDefault
	case state:
		return p.StateLevel()
	default:
		return p.EventsDefault
	}
}

// UserLevel is u's level, not counting the creator's (see State).
func (p *PowerLevels) UserLevel(u crdt.UserID) int64 {
	if len(p.Users) == 0 { // spares the key's text, for every event judged
		return p.UsersDefault
	}
	if v, ok := p.Users[u.String()]; ok {
		return v
	}
	return p.UsersDefault
}

// Encode returns the canonical CBOR body of v.
func Encode(v any) []byte {
	b, err := crdt.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("rooms: encode body: %v", err)) // bodies are plain structs
	}
	return b
}

// DecodeBody decodes a body strictly into v.
func DecodeBody(b []byte, v any) error {
	if b == nil {
		return ErrNoBody
	}
	if err := crdt.UnmarshalCanonical(b, v); err != nil {
		return fmt.Errorf("rooms: body: %w", err)
	}
	return nil
}

package rooms

import (
	"fmt"

	"github.com/parley-p2p/parley/crdt"
)

// Event types.
const (
	TypeCreate   = crdt.TypeCreate
	TypeMember   = "member"    // state key: the target user ID
	TypePower    = "power"     // state key: ""
	TypeJoinRule = "join_rule" // state key: ""
	TypeName     = "room.name" // state key: ""
	TypeTopic    = "room.topic"
	TypeAvatar   = "room.avatar"
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
	Private = "private" // invite only
	Public  = "public"
)

// History policies.
const (
	HistoryShared = "shared"
	HistoryJoined = "joined"
)

// CreateBody is the body of a create event: the room's founding parameters.
type CreateBody struct {
	Name     string `cbor:"name,omitempty"`
	Topic    string `cbor:"topic,omitempty"`
	JoinRule string `cbor:"join_rule"`
	History  string `cbor:"history"`
	DM       []byte `cbor:"dm,omitempty"` // the other user of a direct-message room
	Nonce    []byte `cbor:"nonce,omitempty"`
}

// MemberBody is the body of a member event (state key = target user).
type MemberBody struct {
	Membership  string `cbor:"membership"`
	Reason      string `cbor:"reason,omitempty"`
	DisplayName string `cbor:"displayname,omitempty"`
	Avatar      string `cbor:"avatar,omitempty"`
}

// TextBody is the body of a state event holding one string (name, topic, avatar, join rule).
type TextBody struct {
	Value string `cbor:"value"`
}

// MessageBody is the body of a message event.
type MessageBody struct {
	Text string `cbor:"text"`
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

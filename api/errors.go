package api

import (
	"errors"
	"net/http"
)

// Kind classifies errors at the API edge. The set is small and append-only.
type Kind string

// Error kinds and the HTTP status each maps to.
const (
	KindInvalid     Kind = "invalid"     // bad input: 400
	KindNotFound    Kind = "not_found"   // unknown room, event, peer: 404
	KindPermission  Kind = "permission"  // not allowed: 403
	KindUnavailable Kind = "unavailable" // peer unreachable, shutting down: 503
	KindInternal    Kind = "internal"    // a bug or a broken disk: 500
)

// Kinds lists every Kind, for the API document.
var Kinds = []Kind{KindInvalid, KindNotFound, KindPermission, KindUnavailable, KindInternal}

// Code names an error precisely enough for a client to act on it: the CLI
// keys its advice by it, so messages from the node carry no CLI hints. Most
// errors have none; the set is append-only.
type Code string

// Error codes.
const (
	CodeUnknownRoom     Code = "unknown_room"     // a room this node does not keep
	CodeRoomUnavailable Code = "room_unavailable" // no connected peer served the room
	CodeTypingOff       Code = "typing_off"       // typing notifications are switched off
	CodePresenceOff     Code = "presence_off"     // presence is switched off
	CodeNotLinkCode     Code = "not_link_code"    // a malformed device link code
	CodeNoMaster        Code = "no_master"        // this device holds no master key
	CodeUnknownDevice   Code = "unknown_device"   // a device that is in no room
)

// Codes lists every Code, for the API document.
var Codes = []Code{CodeUnknownRoom, CodeRoomUnavailable, CodeTypingOff, CodePresenceOff, CodeNotLinkCode, CodeNoMaster, CodeUnknownDevice}

// Error is an error with a Kind and optionally a Code. Msg is shown to users
// as "parley: Msg".
type Error struct {
	Kind Kind
	Code Code
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Msg == "" {
		return e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorResp is the body of every error answer.
type ErrorResp struct {
	Error string `json:"error"`
	Kind  Kind   `json:"kind"`
	Code  Code   `json:"code,omitempty"`
}

// CodeOf finds the code of an error the daemon answered, "" when it has none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ErrNoDaemon is the error of a client that finds no daemon to talk to.
var ErrNoDaemon = errors.New("api: no daemon running")

// StatusOf is the HTTP status of errors of kind k.
func StatusOf(k Kind) int {
	switch k {
	case KindInvalid:
		return http.StatusBadRequest
	case KindNotFound:
		return http.StatusNotFound
	case KindPermission:
		return http.StatusForbidden
	case KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

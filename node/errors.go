package node

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
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

// daemonRuns is the error of starting a second daemon on a home.
func daemonRuns(home string) error {
	return &Error{Kind: KindUnavailable, Msg: "a daemon already runs for " + home, Err: ErrRunning}
}

func errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

func codef(k Kind, c Code, format string, args ...any) error {
	return &Error{Kind: k, Code: c, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf finds the code of err, "" when it has none.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case errors.As(err, &e) && e.Code != "":
		return e.Code
	case errors.Is(err, ErrNoMaster):
		return CodeNoMaster
	}
	return ""
}

// Sentinel errors of the node package.
var (
	ErrNoRoom   = errors.New("node: unknown room")
	ErrClosed   = errors.New("node: closed")
	ErrNoDaemon = errors.New("node: no daemon running")
	ErrRunning  = errors.New("node: a daemon already runs for this home")
	ErrDiskFull = errors.New("node: disk full")
)

// KindOf finds the kind of err.
func KindOf(err error) Kind {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Kind
	case errors.Is(err, ErrNoRoom), errors.Is(err, crdt.ErrNotFound):
		return KindNotFound
	case errors.Is(err, rooms.ErrNotPermitted):
		return KindPermission
	case errors.Is(err, crdt.ErrBadID), errors.Is(err, crdt.ErrBadKey), errors.Is(err, crdt.ErrTooLarge), errors.Is(err, rooms.ErrBadEvent):
		return KindInvalid
	case errors.Is(err, ErrClosed):
		return KindUnavailable
	}
	return KindInternal
}

func statusOf(k Kind) int {
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

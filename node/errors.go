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

// Error is an error with a Kind. Msg is shown to users as "parley: Msg".
type Error struct {
	Kind Kind
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

func errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// Sentinel errors of the node package.
var (
	ErrNoRoom   = errors.New("node: unknown room")
	ErrClosed   = errors.New("node: closed")
	ErrNoDaemon = errors.New("node: no daemon running")
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

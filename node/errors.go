package node

import (
	"errors"
	"fmt"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/mediasvc"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// daemonRuns is the error of starting a second daemon on a home.
func daemonRuns(home string) error {
	return &api.Error{Kind: api.KindUnavailable, Msg: "a daemon already runs for " + home, Err: ErrRunning}
}

func errorf(k api.Kind, format string, args ...any) error {
	return &api.Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

func codef(k api.Kind, c api.Code, format string, args ...any) error {
	return &api.Error{Kind: k, Code: c, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf finds the code of err, "" when it has none.
func CodeOf(err error) api.Code {
	var e *api.Error
	switch {
	case errors.As(err, &e) && e.Code != "":
		return e.Code
	case errors.Is(err, p2p.ErrNoMaster):
		return api.CodeNoMaster
	}
	return ""
}

// Sentinel errors of the node package.
var (
	ErrNoRoom   = errors.New("node: unknown room")
	ErrClosed   = errors.New("node: closed")
	ErrRunning  = errors.New("node: a daemon already runs for this home")
	ErrDiskFull = errors.New("node: disk full")
)

// KindOf finds the kind of err.
func KindOf(err error) api.Kind {
	var e *api.Error
	switch {
	case errors.As(err, &e):
		return e.Kind
	case errors.Is(err, ErrNoRoom), errors.Is(err, crdt.ErrNotFound):
		return api.KindNotFound
	case errors.Is(err, rooms.ErrNotPermitted):
		return api.KindPermission
	case errors.Is(err, crdt.ErrBadID), errors.Is(err, crdt.ErrBadKey), errors.Is(err, crdt.ErrTooLarge), errors.Is(err, rooms.ErrBadEvent):
		return api.KindInvalid
	case errors.Is(err, ErrClosed), errors.Is(err, mediasvc.ErrClosed):
		return api.KindUnavailable
	}
	return api.KindInternal
}

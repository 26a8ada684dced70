package node

import (
	"unicode/utf8"

	"github.com/parley-p2p/parley/api"
)

// Limits on what a user may write through the API, checked at the API edge
// before anything changes (docs/limits.md). They are in bytes of
// UTF-8 text; an event must also fit crdt.MaxEventSize, and a sealed one
// e2ee.MaxPlaintext, both far above these.
const (
	MaxRoomName    = 256  // room name (room create, room set --name, names in invites)
	MaxTopic       = 4096 // room topic
	MaxDisplayName = 128  // a user's display name (profile set --name)
	MaxReason      = 1024 // the reason given with invite, kick, ban, unban and redact
)

// checkField validates one user-written field: valid UTF-8 of at most max bytes.
func checkField(what, s string, max int) error {
	if len(s) > max {
		return errorf(api.KindInvalid, "%s of %d bytes is too long (at most %d)", what, len(s), max)
	}
	if !utf8.ValidString(s) {
		return errorf(api.KindInvalid, "%s is not valid UTF-8 text", what)
	}
	return nil
}

// checkFields validates several fields; nil pointers are skipped.
func checkFields(fields ...limitField) error {
	for _, f := range fields {
		if f.s == nil {
			continue
		}
		if err := checkField(f.what, *f.s, f.max); err != nil {
			return err
		}
	}
	return nil
}

type limitField struct {
	what string
	s    *string
	max  int
}

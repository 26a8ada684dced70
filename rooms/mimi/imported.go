package mimi

import (
	"errors"
	"unicode/utf8"
)

// Imported history (docs/protocol.md §5.2, "Imported message"): a message
// brought in from another messenger's export is authored and signed by the
// user who imported it, and says so; what the source said about it (who
// wrote it, when, who reacted) travels as data in the private extension
// KeyParleyImported, never as events in other people's names.

// KeyParleyImported marks a message imported from another messenger: a
// CBOR map (Imported).
var KeyParleyImported = TextKey("parley.imported")

// Bounds of the imported extension.
const (
	MaxImportedText      = 256 // octets of the source, author and author ID
	MaxImportedReactions = 64  // reaction keys
	MaxImportedReactors  = 64  // names listed per key
)

// Imported is what an imported message says about its original.
type Imported struct {
	// ID is the stable import ID of the source message (a hash of the
	// format, the chat and the source's message ID), so that a second
	// import of the same export can skip it.
	ID       []byte `cbor:"id"`
	From     string `cbor:"from"`               // the source format: telegram, whatsapp, element, discord, slack
	Author   string `cbor:"author"`             // the original author's display name
	AuthorID string `cbor:"authorId,omitempty"` // the original author's ID in the source
	TS       int64  `cbor:"ts"`                 // the original time, Unix milliseconds
	Edited   int64  `cbor:"edited,omitempty"`   // when the source says it was last edited, Unix ms
	// Reactions are the original's reactions as the source lists them.
	Reactions []ImportedReaction `cbor:"reactions,omitempty"`
}

// ImportedReaction is one reaction key on an imported message: how many
// reacted and the names the source gives (maybe fewer than Count).
type ImportedReaction struct {
	Key   string   `cbor:"key"`
	Count int      `cbor:"count"`
	Users []string `cbor:"users,omitempty"`
}

// ErrImported is returned for an imported extension out of bounds.
var ErrImported = errors.New("mimi: imported extension out of bounds")

func (im *Imported) check() error {
	ok := len(im.ID) == 32 && im.From != "" && len(im.From) <= MaxImportedText && len(im.Author) <= MaxImportedText &&
		len(im.AuthorID) <= MaxImportedText && len(im.Reactions) <= MaxImportedReactions &&
		utf8.ValidString(im.From+im.Author+im.AuthorID)
	for _, r := range im.Reactions {
		ok = ok && r.Key != "" && len(r.Key) <= MaxReactionKey && utf8.ValidString(r.Key) && r.Count >= 0 && len(r.Users) <= MaxImportedReactors
		for _, u := range r.Users {
			ok = ok && len(u) <= MaxImportedText && utf8.ValidString(u)
		}
	}
	if !ok {
		return ErrImported
	}
	return nil
}

// SetImported marks c as imported with im.
func (c *Content) SetImported(im Imported) error {
	if err := im.check(); err != nil {
		return err
	}
	raw, err := encMode.Marshal(im)
	if err != nil {
		return err
	}
	c.Extensions.SetRaw(KeyParleyImported, raw)
	return nil
}

// ImportedInfo returns c's imported extension; false when it is absent or
// malformed (a receiver then shows the message as the importer's own).
func (c *Content) ImportedInfo() (*Imported, bool) {
	raw, ok := c.Extensions[KeyParleyImported]
	if !ok {
		return nil, false
	}
	var im Imported
	if err := decMode.Unmarshal(raw, &im); err != nil || im.check() != nil {
		return nil, false
	}
	return &im, true
}

package mimi

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Content types Parley writes.
const (
	TypePlain    = "text/plain;charset=utf-8"
	TypeMarkdown = "text/markdown;variant=GFM-MIMI"
	TypeHTML     = "text/html;charset=utf-8"
)

// EncAlgParleyStream is the encAlg of Parley media: the chunked
// ChaCha20-Poly1305 STREAM construction of package media, with a 32-octet
// file key and no nonce. It is not AEAD_CHACHA20_POLY1305 (29) over the
// whole content, so it takes a number from the registry's private-use
// range (32768-65535) rather than mislabel the cipher.
const EncAlgParleyStream uint16 = 0x8001

// MediaURLPrefix starts the URL of a Parley media blob; the rest is the
// blob's root CID.
const MediaURLPrefix = "parley:media/"

// MediaURL returns the URL naming the blob with root CID cid.
func MediaURL(cid string) string { return MediaURLPrefix + cid }

// MediaCID returns the CID a Parley media URL names.
func MediaCID(url string) (string, bool) {
	cid, ok := strings.CutPrefix(url, MediaURLPrefix)
	return cid, ok && cid != ""
}

// Header is what every message Parley builds starts with: a fresh random
// salt (drawn by the caller) and the URIs hashed into the message ID.
type Header struct {
	Salt      Salt
	SenderURI string
	RoomURI   string
}

// New returns a message with h and body and no relations.
func New(h Header, body Part) *Content {
	c := &Content{Salt: h.Salt, Body: body}
	c.Extensions.SetText(KeySenderURI, h.SenderURI)
	c.Extensions.SetText(KeyRoomURI, h.RoomURI)
	return c
}

// TextPart is a plain-text part.
func TextPart(text string) Part {
	return Part{Disposition: Render, Cardinality: SinglePart, ContentType: TypePlain, Content: []byte(text)}
}

// MarkdownPart is rich text with its plain fallback: a chooseOne of the
// Markdown and of PlainText(markdown), in that order of preference.
func MarkdownPart(markdown string) Part {
	md := Part{Disposition: Render, Cardinality: SinglePart, ContentType: TypeMarkdown, Content: []byte(markdown)}
	return Part{Disposition: Render, Cardinality: MultiPart, Semantics: ChooseOne,
		Parts: []Part{md, TextPart(PlainText(markdown))}}
}

// Reply answers the message to (§5.2).
func Reply(h Header, to MessageID, body Part) *Content {
	c := New(h, body)
	c.InReplyTo = &to
	return c
}

// ThreadReply posts into the thread whose root is root, answering to
// (root itself or a message in the thread). The topic ID is the root's
// message ID (§5.11) and inReplyTo makes the message read as a reply where
// topics are not shown.
func ThreadReply(h Header, root, to MessageID, body Part) *Content {
	c := Reply(h, to, body)
	c.TopicID = append([]byte(nil), root[:]...)
	return c
}

// Edit replaces the message original (the ID of its first version, §5.5)
// with body. inReplyTo and topic should repeat the original's.
func Edit(h Header, original MessageID, inReplyTo *MessageID, topic []byte, body Part) *Content {
	c := New(h, body)
	c.Replaces = &original
	c.InReplyTo = inReplyTo
	c.TopicID = topic
	return c
}

// Delete retracts the message original (§5.6): it replaces it with a null
// part.
func Delete(h Header, original MessageID, inReplyTo *MessageID) *Content {
	c := New(h, Part{Disposition: Render, Cardinality: NullPart})
	c.Replaces = &original
	c.InReplyTo = inReplyTo
	return c
}

// MaxReactionKey bounds a reaction key (an emoji sequence or short text),
// in octets.
const MaxReactionKey = 64

// ErrReactionKey is returned for an empty, too long or invalid reaction.
var ErrReactionKey = errors.New("mimi: reaction key must be 1 to 64 octets of UTF-8 without line breaks")

// React reacts to the message to with key (§5.3).
func React(h Header, to MessageID, key string) (*Content, error) {
	if key == "" || len(key) > MaxReactionKey || !utf8.ValidString(key) || strings.ContainsAny(key, "\r\n") {
		return nil, ErrReactionKey
	}
	c := New(h, Part{Disposition: Reaction, Cardinality: SinglePart, ContentType: TypePlain, Content: []byte(key)})
	c.InReplyTo = &to
	return c, nil
}

// Unreact takes back the reaction message reaction, which reacted to to
// (§5.7).
func Unreact(h Header, reaction, to MessageID) *Content {
	c := New(h, Part{Disposition: Reaction, Cardinality: NullPart})
	c.Replaces = &reaction
	c.InReplyTo = &to
	return c
}

// Kind classifies a message by its relations and body.
type Kind uint8

// Message kinds.
const (
	KindMessage    Kind = iota // a new message (maybe a reply or in a thread)
	KindEdit                   // replaces another message with a new body
	KindDelete                 // replaces another message with nothing
	KindReaction               // a reaction to InReplyTo
	KindUnreaction             // takes back the reaction Replaces
)

// Kind returns what c is.
func (c *Content) Kind() Kind {
	reaction := c.Body.Disposition == Reaction
	switch {
	case c.Replaces != nil && c.Body.Cardinality == NullPart && reaction:
		return KindUnreaction
	case c.Replaces != nil && c.Body.Cardinality == NullPart:
		return KindDelete
	case c.Replaces != nil:
		return KindEdit
	case reaction:
		return KindReaction
	}
	return KindMessage
}

// ReactionKey returns the text of a reaction message's first text part.
func (c *Content) ReactionKey() (string, bool) {
	if c.Kind() != KindReaction {
		return "", false
	}
	var key string
	c.Body.Walk(func(_ int, p *Part) bool {
		if p.Cardinality == SinglePart && isType(p.ContentType, "text/plain") && utf8.Valid(p.Content) {
			key = string(p.Content)
			return false
		}
		return true
	})
	return key, key != ""
}

// Thread returns the thread root a message belongs to, if its topic ID is
// a message ID.
func (c *Content) Thread() (MessageID, bool) {
	var id MessageID
	if len(c.TopicID) != len(id) {
		return id, false
	}
	copy(id[:], c.TopicID)
	return id, true
}

// isType reports whether the media type ct (with parameters) is base.
func isType(ct, base string) bool {
	t, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(t), base)
}

// Text returns the message's text: the plain text, and the Markdown when
// the message has it (choosing among alternatives by preferring Markdown
// for rich and plain text for plain). Media, null and reaction parts give
// no text.
func (c *Content) Text() (plain, markdown string) {
	var htmlPlain string // the text of the first HTML part: used without a plain part
	var walk func(p *Part)
	walk = func(p *Part) {
		switch p.Cardinality {
		case SinglePart:
			if p.Disposition.Effective() != Render && p.Disposition != Unspecified {
				return
			}
			if !utf8.Valid(p.Content) {
				return
			}
			switch {
			case isType(p.ContentType, "text/plain") && plain == "":
				plain = string(p.Content)
			case isType(p.ContentType, "text/markdown") && markdown == "":
				markdown = string(p.Content)
			case isType(p.ContentType, "text/html") && htmlPlain == "":
				htmlPlain = HTMLText(string(p.Content))
			}
		case MultiPart:
			for i := range p.Parts {
				walk(&p.Parts[i])
			}
		}
	}
	walk(&c.Body)
	if plain == "" {
		plain = htmlPlain
	}
	if plain == "" && markdown != "" {
		plain = PlainText(markdown)
	}
	return plain, markdown
}

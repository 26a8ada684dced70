package mimi

import (
	"fmt"
	"strconv"
)

// ExtKey is a key of the extensions map (§4.3): a non-zero integer within
// ±(2^53−1) or a text string of 1 to 255 octets. Positive integers are
// registered by IANA (1 senderUri, 2 roomUri); negative integers and text
// keys are for private use.
type ExtKey struct {
	text   string
	num    int64
	isText bool
}

// IntKey returns an integer key.
func IntKey(n int64) ExtKey { return ExtKey{num: n} }

// TextKey returns a text key.
func TextKey(s string) ExtKey { return ExtKey{text: s, isText: true} }

// Int returns the key's integer and true for an integer key.
func (k ExtKey) Int() (int64, bool) { return k.num, !k.isText }

// Text returns the key's text and true for a text key.
func (k ExtKey) Text() (string, bool) { return k.text, k.isText }

// String renders the key as in diagnostic notation.
func (k ExtKey) String() string {
	if k.isText {
		return strconv.Quote(k.text)
	}
	return strconv.FormatInt(k.num, 10)
}

const maxSafeInt = 1<<53 - 1

func (k ExtKey) valid() error {
	if k.isText {
		if len(k.text) < 1 || len(k.text) > 255 {
			return fmt.Errorf("extension key %s: text keys have 1 to 255 octets", k)
		}
		return nil
	}
	if k.num == 0 || k.num > maxSafeInt || k.num < -maxSafeInt {
		return fmt.Errorf("extension key %d out of range", k.num)
	}
	return nil
}

// Registered and Parley private-use extension keys.
var (
	KeySenderURI = IntKey(1) // tstr: the sender's user URI, hashed into the ID
	KeyRoomURI   = IntKey(2) // tstr: the room URI, hashed into the ID
	// KeyParleyMedia carries Parley's media metadata (MediaInfo by
	// partIndex), which MIMI has no fields for (note §6.4).
	KeyParleyMedia = TextKey("parley.media")
)

// Extensions maps extension keys to the deterministic CBOR encoding of
// their values. Encode writes the keys in bytewise order of their encodings.
type Extensions map[ExtKey][]byte

// Text returns the text-string value of k.
func (e Extensions) Text(k ExtKey) (string, bool) {
	raw, ok := e[k]
	if !ok {
		return "", false
	}
	var s string
	if err := decMode.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// SetText sets k to the text string s.
func (e *Extensions) SetText(k ExtKey, s string) {
	raw, err := encMode.Marshal(s)
	if err != nil {
		panic(err) // a string always encodes
	}
	e.SetRaw(k, raw)
}

// SetRaw sets k to an already encoded value; Encode checks it.
func (e *Extensions) SetRaw(k ExtKey, raw []byte) {
	if *e == nil {
		*e = Extensions{}
	}
	(*e)[k] = raw
}

package mimi

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/fxamacker/cbor/v2"
)

// Limits from the draft (§4.1, §6.3, §9.1).
const (
	MaxPartDepth      = 4    // NestedParts nest at most this deep (the body is level 1)
	MaxParts          = 1024 // parts in one message, counting multiparts
	MaxTopicID        = 4096 // octets
	MaxExtensionDepth = 4    // levels of arrays, maps and tags in an extension value
)

// ErrMalformed is wrapped by every Decode and Encode error: the bytes are
// not a deterministic encoding, or the value breaks the schema or a limit.
var ErrMalformed = errors.New("mimi: malformed content")

// decMode reads scalars that skip has already checked.
var decMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:       cbor.DupMapKeyEnforcedAPF,
		IndefLength:     cbor.IndefLengthForbidden,
		UTF8:            cbor.UTF8RejectInvalid,
		MaxNestedLevels: maxCBORDepth + 1,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// encMode writes extension values: RFC 8949 §4.2.1 core deterministic
// encoding (bytewise key order; not the length-first order MIMI forbids).
var encMode = func() cbor.EncMode {
	opts := cbor.CoreDetEncOptions()
	m, err := opts.EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Decode parses one MIMI message. The input must be the deterministic
// encoding of a value that fits the schema and limits; Encode of the result
// gives b back byte for byte.
func Decode(b []byte) (*Content, error) {
	if err := checkDeterministic(b); err != nil {
		return nil, malformed("%v", err)
	}
	f, err := elements(b, 4)
	if err != nil || len(f) != 7 {
		return nil, malformed("want an array of 7 elements")
	}
	c := new(Content)
	salt, err := readBytes(f[0])
	if err != nil || len(salt) != len(c.Salt) {
		return nil, malformed("salt must be 16 octets")
	}
	copy(c.Salt[:], salt)
	if c.Replaces, err = readOptID(f[1]); err != nil {
		return nil, malformed("replaces: %v", err)
	}
	if c.TopicID, err = readBytes(f[2]); err != nil || len(c.TopicID) > MaxTopicID {
		return nil, malformed("topicId must be a byte string of at most %d octets", MaxTopicID)
	}
	if len(c.TopicID) == 0 {
		c.TopicID = nil
	}
	if !isNull(f[3]) {
		e, err := elements(f[3], 4)
		if err != nil || len(e) != 2 {
			return nil, malformed("expires must be null or [bool, uint32]")
		}
		var exp Expiration
		if err := decodeStrict(e[0], 7, &exp.Relative); err != nil {
			return nil, malformed("expires.relative: %v", err)
		}
		t, err := readUint(e[1], math.MaxUint32)
		if err != nil {
			return nil, malformed("expires.time: %v", err)
		}
		exp.Time = uint32(t)
		c.Expires = &exp
	}
	if c.InReplyTo, err = readOptID(f[4]); err != nil {
		return nil, malformed("inReplyTo: %v", err)
	}
	if c.Extensions, err = readExtensions(f[5]); err != nil {
		return nil, malformed("extensions: %v", err)
	}
	count := 0
	if err := readPart(f[6], 1, &count, &c.Body); err != nil {
		return nil, malformed("body: %v", err)
	}
	again, err := Encode(c)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return nil, malformed("re-encoding differs") // a bug if it ever happens
	}
	return c, nil
}

func isNull(raw []byte) bool { return len(raw) == 1 && raw[0] == 0xf6 }

// decodeStrict decodes raw into v after checking its major type, so that
// fxamacker's lenient conversions (text into bytes and the like) never
// apply.
func decodeStrict(raw []byte, major byte, v any) error {
	if len(raw) == 0 || raw[0]>>5 != major {
		return fmt.Errorf("want major type %d", major)
	}
	if major == 7 && raw[0] != 0xf4 && raw[0] != 0xf5 {
		return errors.New("want a bool")
	}
	return decMode.Unmarshal(raw, v)
}

func readBytes(raw []byte) ([]byte, error) {
	var b []byte
	if err := decodeStrict(raw, 2, &b); err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

func readText(raw []byte) (string, error) {
	var s string
	err := decodeStrict(raw, 3, &s)
	return s, err
}

func readUint(raw []byte, max uint64) (uint64, error) {
	var v uint64
	if err := decodeStrict(raw, 0, &v); err != nil {
		return 0, err
	}
	if v > max {
		return 0, fmt.Errorf("%d exceeds %d", v, max)
	}
	return v, nil
}

func readOptID(raw []byte) (*MessageID, error) {
	if isNull(raw) {
		return nil, nil
	}
	b, err := readBytes(raw)
	if err != nil {
		return nil, err
	}
	var id MessageID
	if len(b) != len(id) {
		return nil, errors.New("message id must be 32 octets")
	}
	copy(id[:], b)
	return &id, nil
}

func readExtensions(raw []byte) (Extensions, error) {
	kv, err := elements(raw, 5)
	if err != nil {
		return nil, err
	}
	ext := make(Extensions, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		var k ExtKey
		switch kv[i][0] >> 5 {
		case 0, 1:
			var n int64
			if err := decMode.Unmarshal(kv[i], &n); err != nil {
				return nil, fmt.Errorf("key: %v", err)
			}
			k = IntKey(n)
		case 3:
			s, err := readText(kv[i])
			if err != nil {
				return nil, err
			}
			k = TextKey(s)
		default:
			return nil, errors.New("keys are integers or text strings")
		}
		if err := k.valid(); err != nil {
			return nil, err
		}
		if err := checkExtValue(k, kv[i+1]); err != nil {
			return nil, err
		}
		ext[k] = bytes.Clone(kv[i+1])
	}
	return ext, nil
}

func checkExtValue(k ExtKey, v []byte) error {
	if err := checkDeterministic(v); err != nil {
		return fmt.Errorf("value of %s: %v", k, err)
	}
	if d := containerDepth(v); d > MaxExtensionDepth {
		return fmt.Errorf("value of %s nests %d levels (at most %d)", k, d, MaxExtensionDepth)
	}
	if k == KeySenderURI || k == KeyRoomURI {
		if _, err := readText(v); err != nil {
			return fmt.Errorf("value of %s must be a text string", k)
		}
	}
	return nil
}

func readPart(raw []byte, depth int, count *int, p *Part) error {
	if depth > MaxPartDepth {
		return fmt.Errorf("parts nest deeper than %d", MaxPartDepth)
	}
	if *count++; *count > MaxParts {
		return fmt.Errorf("more than %d parts", MaxParts)
	}
	f, err := elements(raw, 4)
	if err != nil || len(f) < 3 {
		return errors.New("a part is an array of at least 3 elements")
	}
	d, err := readUint(f[0], math.MaxUint8)
	if err != nil {
		return fmt.Errorf("disposition: %v", err)
	}
	p.Disposition = Disposition(d)
	if p.Language, err = readText(f[1]); err != nil {
		return fmt.Errorf("language: %v", err)
	}
	card, err := readUint(f[2], uint64(MultiPart))
	if err != nil {
		return fmt.Errorf("cardinality: %v", err)
	}
	p.Cardinality = Cardinality(card)
	want := [...]int{NullPart: 3, SinglePart: 5, ExternalPart: 15, MultiPart: 5}[p.Cardinality]
	if len(f) != want {
		return fmt.Errorf("cardinality %d wants %d elements, have %d", card, want, len(f))
	}
	switch p.Cardinality {
	case SinglePart:
		if p.ContentType, err = readText(f[3]); err != nil {
			return fmt.Errorf("contentType: %v", err)
		}
		if p.Content, err = readBytes(f[4]); err != nil {
			return fmt.Errorf("content: %v", err)
		}
	case ExternalPart:
		return readExternal(f, p)
	case MultiPart:
		sem, err := readUint(f[3], uint64(ProcessAll))
		if err != nil {
			return fmt.Errorf("partSemantics: %v", err)
		}
		p.Semantics = Semantics(sem)
		parts, err := elements(f[4], 4)
		if err != nil || len(parts) < 2 {
			return errors.New("a multipart has an array of at least 2 parts")
		}
		p.Parts = make([]Part, len(parts))
		for i := range parts {
			if err := readPart(parts[i], depth+1, count, &p.Parts[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func readExternal(f [][]byte, p *Part) error {
	var err error
	x := new(External)
	if p.ContentType, err = readText(f[3]); err != nil {
		return fmt.Errorf("contentType: %v", err)
	}
	if x.URL, err = readText(f[4]); err != nil {
		return fmt.Errorf("url: %v", err)
	}
	var v uint64
	if v, err = readUint(f[5], math.MaxUint32); err != nil {
		return fmt.Errorf("expires: %v", err)
	}
	x.Expires = uint32(v)
	if x.Size, err = readUint(f[6], math.MaxUint64); err != nil {
		return fmt.Errorf("size: %v", err)
	}
	if v, err = readUint(f[7], math.MaxUint16); err != nil {
		return fmt.Errorf("encAlg: %v", err)
	}
	x.EncAlg = uint16(v)
	for i, dst := range []*[]byte{&x.Key, &x.Nonce, &x.AAD} {
		if *dst, err = readBytes(f[8+i]); err != nil {
			return fmt.Errorf("key, nonce or aad: %v", err)
		}
	}
	if v, err = readUint(f[11], math.MaxUint8); err != nil {
		return fmt.Errorf("hashAlg: %v", err)
	}
	x.HashAlg = uint8(v)
	if x.ContentHash, err = readBytes(f[12]); err != nil {
		return fmt.Errorf("contentHash: %v", err)
	}
	if x.Description, err = readText(f[13]); err != nil {
		return fmt.Errorf("description: %v", err)
	}
	if x.Filename, err = readText(f[14]); err != nil {
		return fmt.Errorf("filename: %v", err)
	}
	p.External = x
	return nil
}

// Encode writes c as deterministic CBOR. It checks the same schema and
// limits Decode does, so that whatever it writes, Decode reads.
func Encode(c *Content) ([]byte, error) {
	if len(c.TopicID) > MaxTopicID {
		return nil, malformed("topicId longer than %d octets", MaxTopicID)
	}
	b := make([]byte, 0, 256)
	b = appendHead(b, 4, 7)
	b = appendBytes(b, c.Salt[:])
	b = appendOptID(b, c.Replaces)
	b = appendBytes(b, c.TopicID)
	if c.Expires == nil {
		b = append(b, 0xf6)
	} else {
		b = appendHead(b, 4, 2)
		b = appendBool(b, c.Expires.Relative)
		b = appendHead(b, 0, uint64(c.Expires.Time))
	}
	b = appendOptID(b, c.InReplyTo)
	b, err := appendExtensions(b, c.Extensions)
	if err != nil {
		return nil, malformed("extensions: %v", err)
	}
	count := 0
	if b, err = appendPart(b, &c.Body, 1, &count); err != nil {
		return nil, malformed("body: %v", err)
	}
	if err := checkDeterministic(b); err != nil { // invalid UTF-8 in a text field
		return nil, malformed("%v", err)
	}
	return b, nil
}

func appendBytes(b, s []byte) []byte { return append(appendHead(b, 2, uint64(len(s))), s...) }
func appendText(b []byte, s string) []byte {
	return append(appendHead(b, 3, uint64(len(s))), s...)
}
func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xf5)
	}
	return append(b, 0xf4)
}
func appendOptID(b []byte, id *MessageID) []byte {
	if id == nil {
		return append(b, 0xf6)
	}
	return appendBytes(b, id[:])
}

func appendKey(b []byte, k ExtKey) []byte {
	if k.isText {
		return appendText(b, k.text)
	}
	if k.num < 0 {
		return appendHead(b, 1, uint64(-(k.num + 1)))
	}
	return appendHead(b, 0, uint64(k.num))
}

func appendExtensions(b []byte, ext Extensions) ([]byte, error) {
	type entry struct{ key, val []byte }
	entries := make([]entry, 0, len(ext))
	for k, v := range ext {
		if err := k.valid(); err != nil {
			return nil, err
		}
		if err := checkExtValue(k, v); err != nil {
			return nil, err
		}
		entries = append(entries, entry{appendKey(nil, k), v})
	}
	sort.Slice(entries, func(i, j int) bool { return bytes.Compare(entries[i].key, entries[j].key) < 0 })
	b = appendHead(b, 5, uint64(len(entries)))
	for _, e := range entries {
		b = append(append(b, e.key...), e.val...)
	}
	return b, nil
}

func appendPart(b []byte, p *Part, depth int, count *int) ([]byte, error) {
	if depth > MaxPartDepth {
		return nil, fmt.Errorf("parts nest deeper than %d", MaxPartDepth)
	}
	if *count++; *count > MaxParts {
		return nil, fmt.Errorf("more than %d parts", MaxParts)
	}
	n := [...]uint64{NullPart: 3, SinglePart: 5, ExternalPart: 15, MultiPart: 5}
	if p.Cardinality > MultiPart {
		return nil, fmt.Errorf("cardinality %d", p.Cardinality)
	}
	b = appendHead(b, 4, n[p.Cardinality])
	b = appendHead(b, 0, uint64(p.Disposition))
	b = appendText(b, p.Language)
	b = appendHead(b, 0, uint64(p.Cardinality))
	switch p.Cardinality {
	case SinglePart:
		b = appendText(b, p.ContentType)
		b = appendBytes(b, p.Content)
	case ExternalPart:
		x := p.External
		if x == nil {
			x = &External{}
		}
		b = appendText(b, p.ContentType)
		b = appendText(b, x.URL)
		b = appendHead(b, 0, uint64(x.Expires))
		b = appendHead(b, 0, x.Size)
		b = appendHead(b, 0, uint64(x.EncAlg))
		b = appendBytes(b, x.Key)
		b = appendBytes(b, x.Nonce)
		b = appendBytes(b, x.AAD)
		b = appendHead(b, 0, uint64(x.HashAlg))
		b = appendBytes(b, x.ContentHash)
		b = appendText(b, x.Description)
		b = appendText(b, x.Filename)
	case MultiPart:
		if p.Semantics > ProcessAll {
			return nil, fmt.Errorf("partSemantics %d", p.Semantics)
		}
		if len(p.Parts) < 2 {
			return nil, errors.New("a multipart needs at least 2 parts")
		}
		b = appendHead(b, 0, uint64(p.Semantics))
		b = appendHead(b, 4, uint64(len(p.Parts)))
		var err error
		for i := range p.Parts {
			if b, err = appendPart(b, &p.Parts[i], depth+1, count); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

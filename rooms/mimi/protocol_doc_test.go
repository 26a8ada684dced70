package mimi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestProtocolDocVector checks the MIMI message-ID test vector of
// docs/protocol.md section 10.1 against this package: the encoded content
// and the ID of a plain-text message with the vector's URIs and salt, the
// user key of the vector (bytes 00..1f) in its text form, and the
// derivation as the document spells it out.
func TestProtocolDocVector(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "Test vector (checked by `rooms/mimi` `TestProtocolDocVector`")
	if !ok {
		t.Fatal("docs/protocol.md has no MIMI test vector")
	}
	fields := map[string]string{}
	last := ""
	_, rest, _ = strings.Cut(rest, "```\n")
	for _, line := range strings.Split(rest, "\n") {
		if line == "```" {
			break
		}
		key, val := strings.TrimSpace(line[:min(len(line), 13)]), strings.TrimSpace(line[min(len(line), 13):])
		if key == "" {
			fields[last] += val
			continue
		}
		fields[key], last = val, key
	}
	salt, err := hex.DecodeString(fields["salt"])
	if err != nil || len(salt) != 16 {
		t.Fatalf("salt %q: %v", fields["salt"], err)
	}
	text, err := strconv.Unquote(strings.TrimPrefix(fields["body"], TypePlain+" "))
	if err != nil {
		t.Fatalf("body %q: %v", fields["body"], err)
	}
	sender, room := fields["sender URI"], fields["room URI"]
	h := Header{SenderURI: sender, RoomURI: room}
	copy(h.Salt[:], salt)
	encoded, id, err := New(h, TextPart(text)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(encoded); got != fields["encoded"] {
		t.Errorf("encoded content\n got %s\nwant %s", got, fields["encoded"])
	}
	if id.String() != fields["message ID"] {
		t.Errorf("message ID %s, want %s", id, fields["message ID"])
	}
	// The derivation exactly as the document writes it.
	var pre []byte
	for _, u := range []string{sender, room} {
		pre = append(pre, byte(len(u)>>8), byte(len(u)))
		pre = append(pre, u...)
	}
	sum := sha256.Sum256(bytes.Join([][]byte{pre, encoded, salt}, nil))
	if want := append([]byte{0x01}, sum[:31]...); !bytes.Equal(id[:], want) {
		t.Errorf("message ID %x, the documented derivation gives %x", id[:], want)
	}
	// The user ID's text form: unpadded lower-case base32 of the key.
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	user := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key))
	if sender != UserURIPrefix+user {
		t.Errorf("sender URI %s, want %s%s", sender, UserURIPrefix, user)
	}
}

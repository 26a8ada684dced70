package e2ee

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/parley-p2p/parley/crdt"
)

// Verification of users compares their master keys (docs/design.md §5.1).
// Devices inherit trust from their master-key certificates.

// safetyIterations is libsignal's iteration count.
const safetyIterations = 5200

// fingerprint is libsignal's NumericFingerprintGenerator hash for one
// party: h = 0x0000 ‖ key ‖ stableID, then 5200 times h = SHA-512(h ‖ key).
func fingerprint(key, stableID []byte, iterations int) []byte {
	sum := append(append([]byte{0, 0}, key...), stableID...)
	h := sha512.New()
	for range iterations {
		h.Reset()
		h.Write(sum)
		h.Write(key)
		sum = h.Sum(sum[:0])
	}
	return sum
}

// displayDigits renders the first 30 bytes of a fingerprint as 30 digits:
// six 5-byte big-endian chunks, each mod 100000.
func displayDigits(fp []byte) string {
	var b strings.Builder
	for i := 0; i < 30; i += 5 {
		var chunk [8]byte
		copy(chunk[3:], fp[i:i+5])
		fmt.Fprintf(&b, "%05d", binary.BigEndian.Uint64(chunk[:])%100000)
	}
	return b.String()
}

// SafetyNumber is the 60-digit safety number of two users: libsignal's
// algorithm (version 0 prefix, 5200 SHA-512 iterations, 30 digits per
// party, the two halves in ascending order) with each user's 32-byte master
// public key as both key and stable identifier. It does not depend on the
// order of the arguments, so both sides compute the same number.
func SafetyNumber(a, b crdt.UserID) string {
	x := displayDigits(fingerprint(a[:], a[:], safetyIterations))
	y := displayDigits(fingerprint(b[:], b[:], safetyIterations))
	if y < x {
		x, y = y, x
	}
	return x + y
}

// FormatSafetyNumber groups a safety number in twelve blocks of five digits.
func FormatSafetyNumber(s string) string {
	var parts []string
	for len(s) > 5 {
		parts = append(parts, s[:5])
		s = s[5:]
	}
	return strings.Join(append(parts, s), " ")
}

// Emoji is one entry of the SAS table: the character and its English name.
type Emoji struct {
	Char string
	Name string
}

// SASEmojiTable is the 64-emoji table of Matrix's m.sas.v1 (index = 6-bit value).
var SASEmojiTable = [64]Emoji{
	{"🐶", "Dog"}, {"🐱", "Cat"}, {"🦁", "Lion"}, {"🐎", "Horse"},
	{"🦄", "Unicorn"}, {"🐷", "Pig"}, {"🐘", "Elephant"}, {"🐰", "Rabbit"},
	{"🐼", "Panda"}, {"🐓", "Rooster"}, {"🐧", "Penguin"}, {"🐢", "Turtle"},
	{"🐟", "Fish"}, {"🐙", "Octopus"}, {"🦋", "Butterfly"}, {"🌷", "Flower"},
	{"🌳", "Tree"}, {"🌵", "Cactus"}, {"🍄", "Mushroom"}, {"🌏", "Globe"},
	{"🌙", "Moon"}, {"☁️", "Cloud"}, {"🔥", "Fire"}, {"🍌", "Banana"},
	{"🍎", "Apple"}, {"🍓", "Strawberry"}, {"🌽", "Corn"}, {"🍕", "Pizza"},
	{"🎂", "Cake"}, {"❤️", "Heart"}, {"😀", "Smiley"}, {"🤖", "Robot"},
	{"🎩", "Hat"}, {"👓", "Glasses"}, {"🔧", "Spanner"}, {"🎅", "Santa"},
	{"👍", "Thumbs Up"}, {"☂️", "Umbrella"}, {"⌛", "Hourglass"}, {"⏰", "Clock"},
	{"🎁", "Gift"}, {"💡", "Light Bulb"}, {"📕", "Book"}, {"✏️", "Pencil"},
	{"📎", "Paperclip"}, {"✂️", "Scissors"}, {"🔒", "Lock"}, {"🔑", "Key"},
	{"🔨", "Hammer"}, {"☎️", "Telephone"}, {"🏁", "Flag"}, {"🚂", "Train"},
	{"🚲", "Bicycle"}, {"✈️", "Aeroplane"}, {"🚀", "Rocket"}, {"🏆", "Trophy"},
	{"⚽", "Ball"}, {"🎸", "Guitar"}, {"🎺", "Trumpet"}, {"🔔", "Bell"},
	{"⚓", "Anchor"}, {"🎧", "Headphones"}, {"📁", "Folder"}, {"📌", "Pin"},
}

// SAS is a 7-emoji rendering (42 bits) of the pair of master keys, for
// comparing in person or on a call: HKDF-SHA256(ikm = the two parties'
// 64-byte safety fingerprints in ascending order, no salt, info
// "parley/v1/sas-emoji", 6 bytes), read as seven 6-bit big-endian indices
// into SASEmojiTable. Order-independent like SafetyNumber. It is a static
// comparison of long-term keys (each guess costs an attacker the 5200
// iterations), not Matrix's interactive SAS with ephemeral keys.
func SAS(a, b crdt.UserID) [7]Emoji {
	x := fingerprint(a[:], a[:], safetyIterations)
	y := fingerprint(b[:], b[:], safetyIterations)
	if bytes.Compare(y, x) < 0 {
		x, y = y, x
	}
	bits, err := hkdf.Key(sha256.New, append(x, y...), nil, labelSAS, 6)
	if err != nil {
		panic("e2ee: hkdf: " + err.Error())
	}
	var v uint64
	for _, c := range bits {
		v = v<<8 | uint64(c)
	}
	var out [7]Emoji
	for i := range out {
		out[i] = SASEmojiTable[(v>>(42-6*(i+1)))&63]
	}
	return out
}

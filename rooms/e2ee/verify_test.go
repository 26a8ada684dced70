package e2ee

import (
	"encoding/hex"
	"regexp"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// A6: the numeric fingerprint reproduces libsignal's published vector
// (NumericFingerprintGeneratorTest, version 1 and 2 share the display text).
func TestLibsignalFingerprintVector(t *testing.T) {
	alice, _ := hex.DecodeString("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
	bob, _ := hex.DecodeString("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
	fa := fingerprint(alice, []byte("+14152222222"), 5200)
	fb := fingerprint(bob, []byte("+14153333333"), 5200)
	// The scannable form carries the first 32 bytes of each fingerprint.
	if got := hex.EncodeToString(fa[:32]); got != "1e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df" {
		t.Fatalf("alice fingerprint %s", got)
	}
	if got := hex.EncodeToString(fb[:32]); got != "d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d" {
		t.Fatalf("bob fingerprint %s", got)
	}
	x, y := displayDigits(fa), displayDigits(fb)
	if y < x {
		x, y = y, x
	}
	if got := x + y; got != "300354477692869396892869876765458257569162576843440918079131" {
		t.Fatalf("display %s", got)
	}
}

func TestSafetyNumberSymmetric(t *testing.T) {
	r := seeded(40)
	digits := regexp.MustCompile(`^[0-9]{60}$`)
	var prev string
	for range 5 {
		a, _ := crdt.GenerateKey(r)
		b, _ := crdt.GenerateKey(r)
		ab, ba := SafetyNumber(a.Public(), b.Public()), SafetyNumber(b.Public(), a.Public())
		if ab != ba || !digits.MatchString(ab) {
			t.Fatalf("safety number %q / %q", ab, ba)
		}
		if ab == prev {
			t.Fatal("different pairs, same number")
		}
		prev = ab
		if SAS(a.Public(), b.Public()) != SAS(b.Public(), a.Public()) {
			t.Fatal("SAS depends on the order")
		}
		c, _ := crdt.GenerateKey(r)
		if SafetyNumber(a.Public(), c.Public()) == ab {
			t.Fatal("a changed key keeps the number")
		}
	}
	if got := FormatSafetyNumber("123451234512345"); got != "12345 12345 12345" {
		t.Fatalf("format %q", got)
	}
}

func TestSASTable(t *testing.T) {
	chars, names := map[string]bool{}, map[string]bool{}
	for _, e := range SASEmojiTable {
		if e.Char == "" || e.Name == "" || chars[e.Char] || names[e.Name] {
			t.Fatalf("bad or repeated entry %+v", e)
		}
		chars[e.Char], names[e.Name] = true, true
	}
}

package e2ee

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestKEMRecord(t *testing.T) {
	r := seeded(30)
	d := newDevice(t, r, nil)
	b, err := d.rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeKEMRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Device != d.ID() || got.KEM != d.kem.Public() || got.Seq != 0 {
		t.Fatal("record changed in round trip")
	}
	forged := *d.rec
	forged.Seq = 1
	if err := forged.Verify(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("record with changed seq verifies: %v", err)
	}
	other := newDevice(t, r, nil)
	stolen := *other.rec
	stolen.Device = d.ID()
	if err := stolen.Verify(); err == nil {
		t.Fatal("record signed by another device verifies")
	}
	// Seeds rebuild the same key.
	again, err := KEMSecretKeyFromSeed(d.kem.Seed())
	if err != nil || !again.Equal(d.kem) || again.Public() != d.kem.Public() {
		t.Fatalf("seed round trip: %v", err)
	}
	if d.kem.Equal(other.kem) {
		t.Fatal("different keys compare equal")
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	r := seeded(31)
	d := newDevice(t, r, nil)
	k, err := NewEpoch(r, testRoom)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{"kem": d.kem.Seed(), "epoch": k.Secret()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		for _, v := range []any{d.kem, k, struct{ K *EpochKey }{k}, []*KEMSecretKey{d.kem}} {
			out := fmt.Sprintf(verb, v)
			for name, s := range secrets {
				for _, enc := range []string{string(s), fmt.Sprintf("%x", s), fmt.Sprintf("%X", s), fmt.Sprint(s)} {
					if strings.Contains(out, enc) || bytes.Contains([]byte(out), s[:8]) {
						t.Fatalf("%s secret printed by %s: %s", name, verb, out)
					}
				}
			}
		}
	}
	if !strings.Contains(k.String(), k.ID().String()) {
		t.Error("EpochKey.String should name its epoch")
	}
}

package e2ee

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// Spec vectors (testdata/vectors): every implementation of this layer, in
// any language, must reproduce them. Each case declares its expected
// outcome: "ok" or a failure class ("no_key", "decrypt", "epoch_mismatch",
// "malformed"). `go test -run Vectors -update` regenerates them; review the
// diff, because a changed vector is a protocol change.

var update = flag.Bool("update", false, "rewrite testdata/vectors")

type hexb []byte

func (h hexb) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }
func (h *hexb) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

func outcome(err error) string {
	for name, e := range map[string]error{"no_key": ErrNoKey, "decrypt": ErrDecrypt, "epoch_mismatch": ErrEpochMismatch, "malformed": ErrMalformed} {
		if errors.Is(err, e) {
			return name
		}
	}
	if err != nil {
		return err.Error()
	}
	return "ok"
}

func vectorFile(t *testing.T, name string, gen func() any, check func(data []byte)) {
	t.Helper()
	path := filepath.Join("testdata", "vectors", name)
	if *update {
		b, err := json.MarshalIndent(gen(), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	check(data)
}

type kdfVector struct {
	Room        hexb `json:"room"`
	Secret      hexb `json:"secret"`
	EpochID     hexb `json:"epoch_id"`
	MsgKey      hexb `json:"msg_key"`
	BacklinkKey hexb `json:"backlink_key"`
}

func TestVectorsKDF(t *testing.T) {
	gen := func() any {
		secret := bytes.Repeat([]byte{0x42}, 32)
		k, _ := EpochKeyFromSecret(testRoom, secret)
		return []kdfVector{{Room: hexb(testRoom), Secret: secret, EpochID: k.id[:], MsgKey: k.msgKey[:], BacklinkKey: derive(secret, testRoom, labelBacklinkKey)}}
	}
	vectorFile(t, "kdf.json", gen, func(data []byte) {
		var vs []kdfVector
		if err := json.Unmarshal(data, &vs); err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			k, err := EpochKeyFromSecret(crdt.RoomID(v.Room), v.Secret)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k.id[:], v.EpochID) || !bytes.Equal(k.msgKey[:], v.MsgKey) ||
				!bytes.Equal(derive(v.Secret, crdt.RoomID(v.Room), labelBacklinkKey), v.BacklinkKey) {
				t.Fatal("kdf vector mismatch")
			}
		}
	})
}

type headerJSON struct {
	Room     hexb    `json:"room"`
	Type     string  `json:"type"`
	StateKey *string `json:"skey"`
	User     hexb    `json:"user"`
	Device   hexb    `json:"device"`
	Seq      uint64  `json:"seq"`
	Self     hexb    `json:"self"`
	Prev     []hexb  `json:"prev"`
	Auth     []hexb  `json:"auth"`
	Depth    uint64  `json:"depth"`
	TS       int64   `json:"ts"`
	Epoch    hexb    `json:"epoch"`
}

func toJSON(h Header) headerJSON {
	j := headerJSON{Room: hexb(h.Room), Type: h.Type, StateKey: h.StateKey, User: h.User[:], Device: h.Device[:],
		Seq: h.Seq, Self: hexb(h.Self), Depth: h.Depth, TS: h.TS, Epoch: h.Epoch[:]}
	for _, p := range h.Prev {
		j.Prev = append(j.Prev, hexb(p))
	}
	for _, a := range h.Auth {
		j.Auth = append(j.Auth, hexb(a))
	}
	return j
}

func fromJSON(t *testing.T, j headerJSON) Header {
	h := Header{Room: crdt.RoomID(j.Room), Type: j.Type, StateKey: j.StateKey, Seq: j.Seq, Self: crdt.EventID(j.Self), Depth: j.Depth, TS: j.TS}
	var err error
	if h.User, err = crdt.KeyFromBytes(j.User); err != nil {
		t.Fatal(err)
	}
	if h.Device, err = crdt.KeyFromBytes(j.Device); err != nil {
		t.Fatal(err)
	}
	if h.Epoch, err = EpochIDFromBytes(j.Epoch); err != nil {
		t.Fatal(err)
	}
	for _, p := range j.Prev {
		h.Prev = append(h.Prev, crdt.EventID(p))
	}
	for _, a := range j.Auth {
		h.Auth = append(h.Auth, crdt.EventID(a))
	}
	return h
}

type messageVector struct {
	Name      string     `json:"name"`
	Secret    hexb       `json:"secret"`
	Header    headerJSON `json:"header"`
	AAD       hexb       `json:"aad"`
	Body      hexb       `json:"body"`
	Expect    string     `json:"expect"`
	Plaintext string     `json:"plaintext,omitempty"`
}

func TestVectorsMessage(t *testing.T) {
	gen := func() any {
		r := seeded(80)
		secret := bytes.Repeat([]byte{0x42}, 32)
		k, _ := EpochKeyFromSecret(testRoom, secret)
		a, b := newDevice(t, r, nil), newDevice(t, r, nil)
		prev := crdt.IDOf([]byte("parent"))
		h := Header{Room: testRoom, Type: "message", User: a.id.User, Device: a.ID(), Seq: 3, Self: prev,
			Prev: []crdt.EventID{prev}, Auth: []crdt.EventID{testRoom}, Depth: 4, TS: 1700000000000, Epoch: k.id}
		nonce := bytes.NewReader(bytes.Repeat([]byte{0x24}, 24))
		body, err := k.Seal(nonce, h, []byte("PLAINTEXT-MARKER hello"))
		if err != nil {
			t.Fatal(err)
		}
		aad, _ := h.aad()
		other := h
		other.Device, other.User = b.ID(), b.id.User
		otherAAD, _ := other.aad()
		flipped := bytes.Clone(body)
		flipped[len(flipped)-1] ^= 1
		otherEpoch := h
		otherEpoch.Epoch[0] ^= 1
		otherEpochAAD, _ := otherEpoch.aad()
		return []messageVector{
			{Name: "ok", Secret: secret, Header: toJSON(h), AAD: aad, Body: body, Expect: "ok", Plaintext: "PLAINTEXT-MARKER hello"},
			{Name: "lifted into another author's envelope", Secret: secret, Header: toJSON(other), AAD: otherAAD, Body: body, Expect: "decrypt"},
			{Name: "flipped tag byte", Secret: secret, Header: toJSON(h), AAD: aad, Body: flipped, Expect: "decrypt"},
			{Name: "header names another epoch", Secret: secret, Header: toJSON(otherEpoch), AAD: otherEpochAAD, Body: body, Expect: "no_key"},
		}
	}
	vectorFile(t, "message.json", gen, func(data []byte) {
		var vs []messageVector
		if err := json.Unmarshal(data, &vs); err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			h := fromJSON(t, v.Header)
			if aad, _ := h.aad(); !bytes.Equal(aad, v.AAD) {
				t.Errorf("%s: aad %x, want %x", v.Name, aad, v.AAD)
			}
			k, _ := EpochKeyFromSecret(h.Room, v.Secret)
			p, err := k.Open(h, v.Body)
			if got := outcome(err); got != v.Expect || v.Expect == "ok" && string(p) != v.Plaintext {
				t.Errorf("%s: got %s %q, want %s", v.Name, got, p, v.Expect)
			}
		}
	})
}

type rotationVector struct {
	Name     string `json:"name"`
	Room     hexb   `json:"room"`
	Sender   hexb   `json:"sender"`
	Device   hexb   `json:"device"`
	KEMSeed  hexb   `json:"kem_seed"`
	KEMSeq   uint64 `json:"kem_seq"`
	Rotation hexb   `json:"rotation"`
	Expect   string `json:"expect"`
	Secret   hexb   `json:"secret,omitempty"`
}

func TestVectorsRotation(t *testing.T) {
	gen := func() any {
		r := seeded(81)
		a, b, outsider := newDevice(t, r, nil), newDevice(t, r, nil), newDevice(t, r, nil)
		rot, k := rotate(t, r, a, ReasonCreate, []*device{a, b})
		enc, _ := rot.Marshal()
		ws, _ := sealSecret(testRoom, rot.Epoch, bytes.Repeat([]byte{7}, 32), a.ID(), records(a, b))
		evil, _ := (&Rotation{Room: testRoom, Sender: a.ID(), Epoch: rot.Epoch, Reason: ReasonCreate, Wraps: ws}).Marshal()
		tw, _ := DecodeRotation(testRoom, a.ID(), enc)
		for i := range tw.Wraps {
			tw.Wraps[i].Sealed[100] ^= 1 // inside the encapsulated key
		}
		tampered, _ := tw.Marshal()
		v := func(name string, d *device, rotation []byte, expect string, secret []byte) rotationVector {
			return rotationVector{Name: name, Room: hexb(testRoom), Sender: keyBytes(a.ID()), Device: keyBytes(d.ID()),
				KEMSeed: d.kem.Seed(), KEMSeq: d.rec.Seq, Rotation: rotation, Expect: expect, Secret: secret}
		}
		return []rotationVector{
			v("ok", b, enc, "ok", k.Secret()),
			v("not a recipient", outsider, enc, "no_key", nil),
			v("tampered wrap", b, tampered, "decrypt", nil),
			v("secret does not match epoch id", b, evil, "epoch_mismatch", nil),
			v("truncated", b, enc[:len(enc)-1], "malformed", nil),
		}
	}
	vectorFile(t, "rotation.json", gen, func(data []byte) {
		var vs []rotationVector
		if err := json.Unmarshal(data, &vs); err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			sender, _ := crdt.KeyFromBytes(v.Sender)
			dev, _ := crdt.KeyFromBytes(v.Device)
			kem, err := KEMSecretKeyFromSeed(v.KEMSeed)
			if err != nil {
				t.Fatal(err)
			}
			var k *EpochKey
			rot, err := DecodeRotation(crdt.RoomID(v.Room), sender, v.Rotation)
			if err == nil {
				k, err = rot.Open(DeviceKEM{Device: dev, Seq: v.KEMSeq, Key: kem})
			}
			if got := outcome(err); got != v.Expect || v.Expect == "ok" && !bytes.Equal(k.Secret(), v.Secret) {
				t.Errorf("%s: got %s, want %s", v.Name, got, v.Expect)
			}
		}
	})
}

type safetyVector struct {
	A      hexb     `json:"a"`
	B      hexb     `json:"b"`
	Number string   `json:"number"`
	SAS    []string `json:"sas"`
}

func sasNames(a, b crdt.UserID) []string {
	var out []string
	for _, e := range SAS(a, b) {
		out = append(out, e.Name)
	}
	return out
}

func TestVectorsSafety(t *testing.T) {
	gen := func() any {
		var vs []safetyVector
		for i := range 3 {
			a, _ := crdt.SecretKeyFromSeed(bytes.Repeat([]byte{byte(2 * i)}, 32))
			b, _ := crdt.SecretKeyFromSeed(bytes.Repeat([]byte{byte(2*i + 1)}, 32))
			vs = append(vs, safetyVector{A: keyBytes(a.Public()), B: keyBytes(b.Public()), Number: SafetyNumber(a.Public(), b.Public()), SAS: sasNames(a.Public(), b.Public())})
		}
		return vs
	}
	vectorFile(t, "safety.json", gen, func(data []byte) {
		var vs []safetyVector
		if err := json.Unmarshal(data, &vs); err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			a, _ := crdt.KeyFromBytes(v.A)
			b, _ := crdt.KeyFromBytes(v.B)
			for _, pair := range [][2]crdt.UserID{{a, b}, {b, a}} {
				if got := SafetyNumber(pair[0], pair[1]); got != v.Number {
					t.Errorf("safety number %s, want %s", got, v.Number)
				}
				if got := sasNames(pair[0], pair[1]); !slicesEqual(got, v.SAS) {
					t.Errorf("sas %v, want %v", got, v.SAS)
				}
			}
		}
	})
}

func keyBytes(k crdt.PublicKey) hexb { return hexb(k[:]) }

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

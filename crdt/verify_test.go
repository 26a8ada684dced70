package crdt

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"filippo.io/edwards25519"
	"github.com/hdevalence/ed25519consensus"
)

// zip215Vector is one line of testdata/zip215.txt.
type zip215Vector struct {
	key PublicKey
	sig []byte
}

func zip215Vectors(t *testing.T) []zip215Vector {
	t.Helper()
	f, err := os.Open("testdata/zip215.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []zip215Vector
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, s, _ := strings.Cut(line, " ")
		kb, err1 := hex.DecodeString(k)
		sb, err2 := hex.DecodeString(s)
		if err1 != nil || err2 != nil || len(kb) != 32 || len(sb) != 64 {
			t.Fatalf("bad vector line %q", line)
		}
		vs = append(vs, zip215Vector{key: PublicKey(kb), sig: sb})
	}
	if len(vs) != 196 {
		t.Fatalf("%d vectors, want 196", len(vs))
	}
	return vs
}

// TestZIP215Vectors checks the one rule of docs/protocol.md 1.4 on the ZIP-215
// vectors (small-order keys and R, non-canonical encodings of A and R): the
// single check and the batch give the same answer for each, valid as given
// and invalid with s altered, and crypto/ed25519 (the rule before) refuses
// some of them, so the vectors do reach past it.
func TestZIP215Vectors(t *testing.T) {
	msg := []byte("Zcash")
	all := newSigBatch(0)
	stdRefuses := 0
	for i, v := range zip215Vectors(t) {
		one := newSigBatch(1)
		one.add(v.key, msg, v.sig)
		if !v.key.Verify(msg, v.sig) || !one.verify() {
			t.Errorf("vector %d: single %v, batch %v; want both valid", i, v.key.Verify(msg, v.sig), one.verify())
		}
		all.add(v.key, msg, v.sig)
		if !ed25519.Verify(v.key[:], msg, v.sig) {
			stdRefuses++
		}

		// s + 1 (s stays canonical: every vector's s is small) and s + ℓ
		// (the same scalar, non-canonical): both refused by both paths.
		for _, bad := range [][]byte{addToS(v.sig, 1), addL(v.sig)} {
			b := newSigBatch(1)
			b.add(v.key, msg, bad)
			if v.key.Verify(msg, bad) || b.verify() {
				t.Errorf("vector %d altered: single %v, batch %v; want both invalid", i, v.key.Verify(msg, bad), b.verify())
			}
		}
	}
	if !all.verify() {
		t.Error("the batch of all vectors fails")
	}
	if stdRefuses == 0 {
		t.Error("crypto/ed25519 accepts every vector; they test nothing past it")
	}
	t.Logf("crypto/ed25519 refuses %d of 196 ZIP-215 vectors", stdRefuses)

	// One bad entry fails the whole batch.
	vs := zip215Vectors(t)
	mixed := newSigBatch(len(vs))
	for i, v := range vs {
		sig := v.sig
		if i == 100 {
			sig = addToS(sig, 1)
		}
		mixed.add(v.key, msg, sig)
	}
	if mixed.verify() {
		t.Error("a batch with one bad signature verifies")
	}
	if newSigBatch(0).verify() {
		t.Error("an empty batch verifies")
	}
}

// TestSharedKeyBatch checks the batch that sums the terms of a shared key
// against ed25519consensus's BatchVerifier, which keeps a term per entry:
// random batches over few keys (the ZIP-215 vectors' among them), with
// bad entries (s altered, s + ℓ, a flipped R or message bit, a signature
// under another key) in some, get the same verdict from both, and the
// verdict is the conjunction of the single checks.
func TestSharedKeyBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	vs := zip215Vectors(t)
	var devs []*SecretKey
	for i := range 3 {
		seed := make([]byte, 32)
		seed[0] = byte(i + 1)
		k, err := SecretKeyFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, k)
	}
	type entry struct {
		key      PublicKey
		msg, sig []byte
	}
	for round := range 400 {
		n := 1 + r.IntN(80)
		var es []entry
		for range n {
			if r.IntN(4) == 0 {
				v := vs[r.IntN(len(vs))]
				es = append(es, entry{v.key, []byte("Zcash"), v.sig})
				continue
			}
			d := devs[r.IntN(len(devs))]
			msg := fmt.Appendf(nil, "event %d", r.Uint64())
			es = append(es, entry{d.Public(), msg, d.Sign(msg)})
		}
		if round%2 == 0 {
			i := r.IntN(len(es))
			e := &es[i]
			switch r.IntN(5) {
			case 0:
				e.sig = addToS(e.sig, 1)
			case 1:
				e.sig = addL(e.sig)
			case 2:
				e.sig = slices.Clone(e.sig)
				e.sig[r.IntN(32)] ^= 1 << r.IntN(8)
			case 3:
				e.msg = append(slices.Clone(e.msg), 'x')
			case 4:
				msg := []byte("other")
				e.msg, e.sig = msg, devs[0].Sign(msg)
				if e.key == devs[0].Public() {
					e.key = devs[1].Public()
				}
			}
		}
		ours := newSigBatch(len(es))
		ref := ed25519consensus.NewPreallocatedBatchVerifier(len(es))
		all := true
		for _, e := range es {
			ours.add(e.key, e.msg, e.sig)
			ref.Add(e.key[:], e.msg, e.sig)
			all = all && e.key.Verify(e.msg, e.sig)
		}
		if got, want := ours.verify(), ref.Verify(); got != want || got != all {
			t.Fatalf("round %d (%d entries, %d keys): shared-key batch %v, ed25519consensus %v, single checks %v", round, len(es), len(ours.keys), got, want, all)
		}
	}
	short := newSigBatch(1)
	short.add(devs[0].Public(), []byte("m"), make([]byte, 63))
	if short.verify() {
		t.Error("a batch with a 63-byte signature verifies")
	}
}

// addToS returns sig with n added to the little-endian s half (no carry
// past byte 32+8 is needed for the vectors' small s values).
func addToS(sig []byte, n byte) []byte {
	out := slices.Clone(sig)
	var s edwards25519.Scalar
	if _, err := s.SetCanonicalBytes(out[32:]); err != nil {
		panic(err)
	}
	var one [32]byte
	one[0] = n
	d, _ := new(edwards25519.Scalar).SetCanonicalBytes(one[:])
	copy(out[32:], s.Add(&s, d).Bytes())
	return out
}

// addL returns sig with ℓ (the group order) added to s: the same scalar,
// encoded non-canonically.
func addL(sig []byte) []byte {
	l := []byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	out := slices.Clone(sig)
	carry := 0
	for i := range 32 {
		x := int(out[32+i]) + int(l[i]) + carry
		out[32+i], carry = byte(x), x>>8
	}
	return out
}

// edgeKind names a way of signing that ZIP-215 accepts and the cofactorless
// check of crypto/ed25519 refuses (or, for smallOrderKey, both accept).
type edgeKind int

const (
	smallOrderR   edgeKind = iota // R' = rB + T, T of small order
	nonCanonicalR                 // r = 0, R' = the identity encoded with y = p + 1
)

// edgeSigner signs as the Ed25519 key of seed, but with a nonce point that
// only the cofactored check accepts. It is the key's owner who can do this:
// nobody else can make such a signature.
func edgeSigner(seed []byte, kind edgeKind) func([]byte) []byte {
	h := sha512.Sum512(seed)
	a, err := new(edwards25519.Scalar).SetBytesWithClamping(h[:32])
	if err != nil {
		panic(err)
	}
	pub := new(edwards25519.Point).ScalarBaseMult(a).Bytes()
	return func(msg []byte) []byte {
		var rb []byte
		r := edwards25519.NewScalar()
		switch kind {
		case smallOrderR:
			rh := sha512.Sum512(append(slices.Clone(h[32:]), msg...))
			r.SetUniformBytes(rh[:])
			t, err := new(edwards25519.Point).SetBytes(mustHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"))
			if err != nil {
				panic(err)
			}
			rb = new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(r), t).Bytes()
		case nonCanonicalR:
			rb = nonCanonicalIdentity()
		}
		kh := sha512.New()
		kh.Write(rb)
		kh.Write(pub)
		kh.Write(msg)
		k, _ := new(edwards25519.Scalar).SetUniformBytes(kh.Sum(nil))
		s := new(edwards25519.Scalar).MultiplyAdd(k, a, r)
		return append(slices.Clone(rb), s.Bytes()...)
	}
}

// nonCanonicalIdentity is the identity point (0, 1) encoded as y = p + 1.
func nonCanonicalIdentity() []byte {
	b := make([]byte, 32)
	b[0] = 0xee
	for i := 1; i < 31; i++ {
		b[i] = 0xff
	}
	b[31] = 0x7f
	return b
}

// smallOrderSigner signs as the identity point, a key of order 1: any
// R = sB verifies for any message, under both rules.
func smallOrderSigner(r *rand.Rand) func([]byte) []byte {
	return func([]byte) []byte {
		var wide [64]byte
		for i := range wide {
			wide[i] = byte(r.Uint32())
		}
		s, _ := new(edwards25519.Scalar).SetUniformBytes(wide[:])
		return append(new(edwards25519.Point).ScalarBaseMult(s).Bytes(), s.Bytes()...)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// edgeAuthor is an author of the property test's room and how it signs.
type edgeAuthor struct {
	name string
	id   *Identity
	dev  DeviceID
	sign func([]byte) []byte
	std  bool // whether crypto/ed25519 accepts its events
}

func edgeAuthors(t testing.TB, r *rand.Rand) []edgeAuthor {
	t.Helper()
	mk := func(name string) (*SecretKey, []byte) {
		seed := make([]byte, 32)
		copy(seed, name)
		master, err := SecretKeyFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		devSeed := sha512.Sum512(seed)
		return master, devSeed[:32]
	}
	var out []edgeAuthor
	// An honest author.
	m, ds := mk("honest")
	dev, _ := SecretKeyFromSeed(ds)
	out = append(out, edgeAuthor{"honest", &Identity{User: m.Public(), Device: dev, Cert: CertifyDevice(m, dev.Public())}, dev.Public(), dev.Sign, true})
	// Events with a small-order component in R.
	m, ds = mk("small-order R")
	dev, _ = SecretKeyFromSeed(ds)
	out = append(out, edgeAuthor{"small-order R", &Identity{User: m.Public(), Device: dev, Cert: CertifyDevice(m, dev.Public())}, dev.Public(), edgeSigner(ds, smallOrderR), false})
	// Events and a certificate with R encoded non-canonically.
	m, ds = mk("non-canonical R")
	dev, _ = SecretKeyFromSeed(ds)
	mseed := make([]byte, 32)
	copy(mseed, "non-canonical R")
	cert := edgeSigner(mseed, nonCanonicalR)(certMessage(m.Public(), dev.Public()))
	out = append(out, edgeAuthor{"non-canonical R", &Identity{User: m.Public(), Device: dev, Cert: cert}, dev.Public(), edgeSigner(ds, nonCanonicalR), false})
	// A device key of small order, encoded non-canonically.
	m, _ = mk("small-order key")
	small := PublicKey(nonCanonicalIdentity())
	out = append(out, edgeAuthor{"small-order key", &Identity{User: m.Public(), Cert: CertifyDevice(m, small)}, small, smallOrderSigner(r), true})
	return out
}

// TestSingleBatchNoDivergence is the property of docs/protocol.md 1.4: one
// set of events, with the edge cases of the rule and invalid events among
// them, fed to one node that verifies one at a time (Decode) and to another
// that verifies in batches of random pages (DecodeBatch), in different
// orders, gives the same verdict on every frame and the same log.
func TestSingleBatchNoDivergence(t *testing.T) {
	for _, s := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(s), func(t *testing.T) { testNoDivergence(t, s) })
	}
}

func testNoDivergence(t *testing.T, s uint64) {
	r := rand.New(rand.NewPCG(s, 16))
	defer func() {
		if t.Failed() {
			t.Logf("seed %d", s)
		}
	}()
	authors := edgeAuthors(t, r)
	create, err := Sign(authors[0].id, Draft{Type: TypeCreate, TS: 1, Body: []byte("edge room")})
	if err != nil {
		t.Fatal(err)
	}
	gen := NewLog(create.ID, LogConfig{})
	gen.Add(create)
	frames := [][]byte{create.Encode()}
	valid := map[string]bool{string(create.Encode()): true}
	stdRefused := 0
	for i := range 600 {
		a := authors[r.IntN(len(authors))]
		d := gen.Prepare(a.dev, int64(2+i), Draft{Type: "message", Auth: []EventID{create.ID}, Body: fmt.Appendf(nil, "%s %d", a.name, i)})
		ev, err := signWith(a.id, a.dev, d, a.sign)
		if err != nil {
			t.Fatal(err)
		}
		gen.Add(ev)
		frames = append(frames, ev.Encode())
		valid[string(ev.Encode())] = true
		if !a.std {
			stdRefused++
		}
		if r.IntN(8) == 0 { // an invalid twin: one bit of the signature flipped
			var e envelope
			if err := UnmarshalCanonical(ev.Envelope, &e); err != nil {
				t.Fatal(err)
			}
			at := bytes.Index(ev.Envelope, e.Sig)
			bad := *ev
			env := slices.Clone(ev.Envelope)
			env[at+r.IntN(64)] ^= 1 << r.IntN(8)
			bad.Envelope = env
			frames = append(frames, bad.Encode())
		}
	}
	if stdRefused == 0 {
		t.Fatal("no event that crypto/ed25519 refuses")
	}

	// Node A: one at a time, in one order.
	ForgetVerified()
	single := NewLog(create.ID, LogConfig{})
	verdictA := map[string]bool{}
	for _, i := range r.Perm(len(frames)) {
		ev, err := Decode(frames[i])
		verdictA[string(frames[i])] = err == nil
		if err == nil {
			single.Add(ev)
		}
	}
	// Node B: in batches of random pages, in another order.
	ForgetVerified()
	batched := NewLog(create.ID, LogConfig{})
	verdictB := map[string]bool{}
	order := r.Perm(len(frames))
	for len(order) > 0 {
		n := min(len(order), 1+r.IntN(200))
		page := make([][]byte, n)
		for j, i := range order[:n] {
			page[j] = frames[i]
		}
		order = order[n:]
		evs, errs := DecodeBatch(page)
		var ok []*Event
		for j := range page {
			verdictB[string(page[j])] = errs[j] == nil
			if errs[j] == nil {
				ok = append(ok, evs[j])
			}
		}
		batched.Add(ok...)
	}

	for _, f := range frames {
		if verdictA[string(f)] != verdictB[string(f)] || verdictA[string(f)] != valid[string(f)] {
			t.Errorf("frame verdicts: single %v, batch %v, want %v", verdictA[string(f)], verdictB[string(f)], valid[string(f)])
		}
	}
	if single.Len() != gen.Len() || batched.Len() != gen.Len() {
		t.Errorf("logs hold %d (single) and %d (batch) events, want %d", single.Len(), batched.Len(), gen.Len())
	}
	if !slices.Equal(single.Order(), batched.Order()) || !slices.Equal(single.Heads(), batched.Heads()) {
		t.Error("single and batch logs differ")
	}
	if single.MissingCount() != 0 || batched.MissingCount() != 0 {
		t.Errorf("missing: %d single, %d batch", single.MissingCount(), batched.MissingCount())
	}
}

// TestEdgeSignaturesAreEdges checks the test's own signers: each makes what
// it claims, so the property test covers what it says.
func TestEdgeSignaturesAreEdges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	msg := []byte("parley")
	for _, a := range edgeAuthors(t, r) {
		sig := a.sign(msg)
		if !a.dev.Verify(msg, sig) {
			t.Errorf("%s: ZIP-215 refuses", a.name)
		}
		if got := ed25519.Verify(a.dev[:], msg, sig); got != a.std {
			t.Errorf("%s: crypto/ed25519 says %v, want %v", a.name, got, a.std)
		}
		if !CheckDeviceCert(a.id.User, a.dev, a.id.Cert) {
			t.Errorf("%s: certificate refused", a.name)
		}
	}
}

// TestSignedPart checks the cut that saves Decode an encoding: for every
// size class of the integers before "sig", and the optional fields, it gives
// the bytes that encoding the envelope without sig gives.
func TestSignedPart(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	id := testIdentity(t)
	ints := []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<63 - 1}
	for i := range 300 {
		env := envelope{V: Version, Type: "message", User: id.User[:], Device: make([]byte, 32), Cert: make([]byte, 64),
			Seq: ints[r.IntN(len(ints))], Depth: 1, TS: int64(ints[r.IntN(len(ints))]), BodyHash: make([]byte, 32),
			Prev: []link{link(IDOf([]byte{1}))}, Auth: []link{}, Sig: make([]byte, 64)}
		if i%2 == 0 {
			env.TS = -env.TS - 1
		}
		if i%3 == 0 {
			k := "sig\x58\x40 in a state key"
			env.SKey = &k
			env.Epoch = []byte("e")
		}
		for j := range env.Sig {
			env.Sig[j] = byte(r.Uint32())
		}
		full, err := encMode.Marshal(&env)
		if err != nil {
			t.Fatal(err)
		}
		env.Sig = nil
		unsigned, err := encMode.Marshal(&env)
		if err != nil {
			t.Fatal(err)
		}
		if got := signedPart(full); !bytes.Equal(got, append([]byte(signTag), unsigned...)) {
			t.Fatalf("seq %d ts %d: signedPart differs from the encoding without sig", env.Seq, env.TS)
		}
	}
	for _, b := range [][]byte{nil, {0xa0}, {0xb8, 30}, {0xa3, 0x61, 'v', 0x18}} {
		if signedPart(b) != nil {
			t.Errorf("signedPart(%x) is not nil", b)
		}
	}
}

// BenchmarkVerify compares, per signature on one core, the earlier rule
// (crypto/ed25519), the single ZIP-215 check that gossip uses and the
// batches of DecodeBatch.
func BenchmarkVerify(b *testing.B) {
	dev, _ := SecretKeyFromSeed(make([]byte, 32))
	pub := dev.Public()
	msgs := make([][]byte, batchSize)
	sigs := make([][]byte, batchSize)
	for i := range msgs {
		msgs[i] = fmt.Appendf(nil, "message %d %s", i, strings.Repeat("x", 400))
		sigs[i] = dev.Sign(msgs[i])
	}
	b.Run("crypto-ed25519", func(b *testing.B) {
		for i := range b.N {
			if !ed25519.Verify(pub[:], msgs[i%batchSize], sigs[i%batchSize]) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("zip215-single", func(b *testing.B) {
		for i := range b.N {
			if !pub.Verify(msgs[i%batchSize], sigs[i%batchSize]) {
				b.Fatal("refused")
			}
		}
	})
	b.Run(fmt.Sprintf("zip215-batch%d", batchSize), func(b *testing.B) {
		for i := 0; i < b.N; i += batchSize {
			bv := newSigBatch(batchSize)
			for j := range batchSize {
				bv.add(pub, msgs[j], sigs[j])
			}
			if !bv.verify() {
				b.Fatal("refused")
			}
		}
	})
}

// FuzzDecodeBatch checks DecodeBatch against Decode on arbitrary frames: in a
// page with a good event on either side, each frame gets the verdict and the
// event Decode gives it, so no input makes the batch path diverge.
func FuzzDecodeBatch(f *testing.F) {
	r := rand.New(rand.NewPCG(9, 9))
	authors := edgeAuthors(f, r)
	create, err := Sign(authors[0].id, Draft{Type: TypeCreate, TS: 1, Body: []byte("room")})
	if err != nil {
		f.Fatal(err)
	}
	var evs []*Event
	for i, a := range authors {
		ev, err := signWith(a.id, a.dev, Draft{Room: create.ID, Type: "message", Prev: []EventID{create.ID}, Depth: 1, TS: int64(2 + i), Body: []byte(a.name)}, a.sign)
		if err != nil {
			f.Fatal(err)
		}
		evs = append(evs, ev)
		good := ev.Encode()
		f.Add(good)
		flipped := bytes.Clone(good)
		flipped[len(flipped)-10] ^= 0x01
		f.Add(flipped)
		f.Add(good[:len(good)/2])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		page := [][]byte{evs[0].Encode(), b, evs[1].Encode()}
		ForgetVerified()
		want, wantErr := Decode(b)
		ForgetVerified()
		got, errs := DecodeBatch(page)
		if (wantErr == nil) != (errs[1] == nil) {
			t.Fatalf("Decode: %v; DecodeBatch: %v", wantErr, errs[1])
		}
		if wantErr == nil && got[1].ID != want.ID {
			t.Fatalf("Decode gives %s, DecodeBatch %s", want.ID, got[1].ID)
		}
		if errs[0] != nil || errs[2] != nil {
			t.Fatalf("a bad frame spoils its neighbours: %v, %v", errs[0], errs[2])
		}
	})
}

// BenchmarkDecodePage decodes a sync page of 1,000 message frames of one
// author (a 450-byte body each) with DecodeBatch, every signature verified
// (nothing remembered from the iteration before): the decode and verify of a
// catch-up per event. allocs/op and B/op are per page.
func BenchmarkDecodePage(b *testing.B) {
	id := testIdentity(b)
	create, err := Sign(id, Draft{Type: TypeCreate, TS: 1, Body: []byte("room")})
	if err != nil {
		b.Fatal(err)
	}
	frames := make([][]byte, 1000)
	prev := create.ID
	for i := range frames {
		ev, err := Sign(id, Draft{Room: create.ID, Type: "message", Prev: []EventID{prev}, Auth: []EventID{create.ID},
			Depth: uint64(i + 1), Seq: uint64(i + 1), Self: prev, TS: int64(i + 2), Body: fmt.Appendf(nil, "%d %s", i, strings.Repeat("x", 450))})
		if err != nil {
			b.Fatal(err)
		}
		frames[i], prev = ev.Encode(), ev.ID
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ForgetVerified()
		_, errs := DecodeBatch(frames)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/event")
}

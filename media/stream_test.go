package media

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
)

func testKey(t testing.TB, seed uint64) FileKey {
	t.Helper()
	k, err := NewFileKey(rand.NewChaCha8([32]byte{byte(seed)}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func payload(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), 1})
	_, _ = r.Read(b)
	return b
}

var sizes = []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 7, 5<<20 + 3}

func TestSealOpenSizes(t *testing.T) {
	key := testKey(t, 1)
	for _, n := range sizes {
		pt := payload(n, uint64(n))
		ct, err := Seal(key, pt)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(ct)) != CiphertextSize(int64(n)) {
			t.Errorf("size %d: ciphertext %d, CiphertextSize %d", n, len(ct), CiphertextSize(int64(n)))
		}
		if p, err := PlaintextSize(int64(len(ct))); err != nil || p != int64(n) {
			t.Errorf("PlaintextSize(%d) = %d, %v; want %d", len(ct), p, err, n)
		}
		got, err := Open(key, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: round trip failed: %v", n, err)
		}
		// Streaming with odd read sizes gives the same.
		r, _ := NewDecryptReader(&oddReader{b: ct}, key)
		got, err = io.ReadAll(r)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: streaming round trip failed: %v", n, err)
		}
	}
}

// oddReader returns at most 7 octets per Read.
type oddReader struct{ b []byte }

func (r *oddReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 7)], r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestTamperTruncateReorderWrongKey(t *testing.T) {
	key := testKey(t, 2)
	pt := payload(3*ChunkSize+100, 9)
	ct, _ := Seal(key, pt)
	// Every octet position class: each chunk's start, middle, tag, end.
	var positions []int
	for c := 0; c < 4; c++ {
		base := c * SealedChunkSize
		for _, o := range []int{0, 1, 1000, SealedChunkSize - TagSize, SealedChunkSize - 1} {
			if base+o < len(ct) {
				positions = append(positions, base+o)
			}
		}
	}
	positions = append(positions, len(ct)-1)
	for _, i := range positions {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		if _, err := Open(key, bad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("flipped octet %d: err = %v", i, err)
		}
	}
	// Truncation at chunk boundaries (would pass without the last flag)
	// and elsewhere.
	for _, n := range []int{0, 1, TagSize, SealedChunkSize, 2 * SealedChunkSize, 3 * SealedChunkSize, len(ct) - 1} {
		r, _ := NewDecryptReader(bytes.NewReader(ct[:n]), key)
		if _, err := io.ReadAll(r); !errors.Is(err, ErrDecrypt) {
			t.Errorf("truncated to %d: err = %v", n, err)
		}
	}
	// Extension: a copy of a chunk appended.
	ext := append(bytes.Clone(ct), ct[:SealedChunkSize]...)
	if _, err := Open(key, ext); !errors.Is(err, ErrDecrypt) {
		t.Errorf("extended: err = %v", err)
	}
	// Reordered chunks.
	re := bytes.Clone(ct)
	copy(re[:SealedChunkSize], ct[SealedChunkSize:2*SealedChunkSize])
	copy(re[SealedChunkSize:2*SealedChunkSize], ct[:SealedChunkSize])
	if _, err := Open(key, re); !errors.Is(err, ErrDecrypt) {
		t.Errorf("reordered: err = %v", err)
	}
	if _, err := Open(testKey(t, 3), ct); !errors.Is(err, ErrDecrypt) {
		t.Errorf("wrong key: err = %v", err)
	}
	empty, _ := Seal(key, nil)
	if _, err := Open(testKey(t, 3), empty); !errors.Is(err, ErrDecrypt) {
		t.Errorf("wrong key, empty file: err = %v", err)
	}
}

func TestFileKey(t *testing.T) {
	k := testKey(t, 4)
	k2, err := FileKeyFromBytes(k.Bytes())
	if err != nil || !k.Equal(k2) || k.Equal(testKey(t, 5)) {
		t.Fatal("key round trip")
	}
	if _, err := FileKeyFromBytes(make([]byte, 31)); err == nil {
		t.Error("short key accepted")
	}
	if s := k.String(); bytes.Contains([]byte(s), k.Bytes()[:4]) {
		t.Error("String leaks the key")
	}
	if _, err := NewFileKey(bytes.NewReader(make([]byte, 10))); err == nil {
		t.Error("short randomness accepted")
	}
}

// genReader yields n pseudo-random octets without holding them.
type genReader struct {
	n   int64
	rng *rand.ChaCha8
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n)]
	_, _ = g.rng.Read(p)
	g.n -= int64(len(p))
	return len(p), nil
}

// Streaming encryption and decryption of 64 MiB allocate a bounded amount,
// not the file.
func TestStreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB")
	}
	const n = 64 << 20
	key := testKey(t, 6)
	pr, pw := io.Pipe()
	go func() {
		w, _ := NewEncryptWriter(pw, key)
		_, err := io.Copy(w, &genReader{n: n, rng: rand.NewChaCha8([32]byte{7})})
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, _ := NewDecryptReader(pr, key)
	got, err := io.Copy(io.Discard, r)
	runtime.ReadMemStats(&after)
	if err != nil || got != n {
		t.Fatalf("streamed %d, %v", got, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("streaming 64 MiB allocated %d MiB", alloc>>20)
	}
}

func FuzzOpen(f *testing.F) {
	key := testKey(f, 8)
	for _, n := range []int{0, 1, 100, ChunkSize, ChunkSize + 1} {
		ct, _ := Seal(key, payload(n, 1))
		f.Add(ct)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ct []byte) {
		pt, err := Open(key, ct)
		if err == nil {
			again, _ := Seal(key, pt)
			if len(again) != len(ct) {
				t.Fatalf("opened %d octets of ciphertext into %d of plaintext", len(ct), len(pt))
			}
		}
		r, _ := NewDecryptReader(bytes.NewReader(ct), key)
		_, _ = io.Copy(io.Discard, r)
		_, _ = PlaintextSize(int64(len(ct)))
	})
}

func BenchmarkSeal(b *testing.B) {
	key := testKey(b, 9)
	pt := payload(16<<20, 2)
	w, _ := NewEncryptWriter(io.Discard, key)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(pt); err != nil {
			b.Fatal(err)
		}
	}
	_ = w.Close()
	b.ReportMetric(float64(b.N)*float64(len(pt))/b.Elapsed().Seconds()/1e6, "MB/s")
}

func BenchmarkOpen(b *testing.B) {
	key := testKey(b, 9)
	ct, _ := Seal(key, payload(16<<20, 2))
	b.SetBytes(int64(len(ct)))
	b.ReportAllocs()
	for range b.N {
		r, _ := NewDecryptReader(bytes.NewReader(ct), key)
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*float64(len(ct))/b.Elapsed().Seconds()/1e6, "MB/s")
}

package media

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of the chunked encryption.
const (
	ChunkSize       = 64 << 10                           // plaintext octets per chunk
	TagSize         = chacha20poly1305.Overhead          // 16
	SealedChunkSize = ChunkSize + TagSize                // ciphertext octets per full chunk
	KeySize         = chacha20poly1305.KeySize           // 32
	payloadInfo     = "parley/media/v1/chacha20poly1305" // HKDF info: domain separation
)

// ErrDecrypt is returned when a chunk does not open: a wrong key, a
// modified, reordered, truncated or extended ciphertext.
var ErrDecrypt = errors.New("media: decryption failed (wrong key or corrupt ciphertext)")

// FileKey is the random key of one file. It is never reused and never
// derived from the content (no convergent encryption).
type FileKey struct {
	k [KeySize]byte
}

// NewFileKey draws a key from rand, which must be a cryptographically
// secure source (crypto/rand.Reader in production).
func NewFileKey(rand io.Reader) (FileKey, error) {
	var k FileKey
	if _, err := io.ReadFull(rand, k.k[:]); err != nil {
		return FileKey{}, fmt.Errorf("media: draw file key: %w", err)
	}
	return k, nil
}

// FileKeyFromBytes reads a key carried in a message.
func FileKeyFromBytes(b []byte) (FileKey, error) {
	var k FileKey
	if len(b) != KeySize {
		return k, fmt.Errorf("media: file key has %d octets, want %d", len(b), KeySize)
	}
	copy(k.k[:], b)
	return k, nil
}

// Bytes returns a copy of the key, to put in a message.
func (k FileKey) Bytes() []byte { return append([]byte(nil), k.k[:]...) }

// Equal compares keys in constant time.
func (k FileKey) Equal(o FileKey) bool { return subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1 }

// String never prints the key.
func (k FileKey) String() string { return "media.FileKey(…)" }

func (k FileKey) aead() (cipherAEAD, error) {
	pk, err := hkdf.Key(sha256.New, k.k[:], nil, payloadInfo, KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.New(pk)
}

type cipherAEAD interface {
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}

// nonce is the 11-octet big-endian chunk counter followed by the
// last-chunk flag.
func nonce(n *[12]byte, counter uint64, last bool) {
	*n = [12]byte{}
	binary.BigEndian.PutUint64(n[3:11], counter)
	if last {
		n[11] = 1
	}
}

// CiphertextSize returns the ciphertext size of a plaintext of n octets.
func CiphertextSize(n int64) int64 {
	chunks := max(1, (n+ChunkSize-1)/ChunkSize)
	return n + chunks*TagSize
}

// PlaintextSize inverts CiphertextSize; it fails for sizes no plaintext
// has.
func PlaintextSize(c int64) (int64, error) {
	if c < TagSize {
		return 0, ErrDecrypt
	}
	full := c / SealedChunkSize
	rest := c % SealedChunkSize
	switch {
	case rest == 0:
		return full * ChunkSize, nil
	case full > 0 && rest <= TagSize: // a last chunk would be empty
		return 0, ErrDecrypt
	case rest < TagSize:
		return 0, ErrDecrypt
	}
	return full*ChunkSize + rest - TagSize, nil
}

// encryptWriter seals what is written to it chunk by chunk into dst.
type encryptWriter struct {
	dst     io.Writer
	aead    cipherAEAD
	buf     []byte // plaintext of the pending chunk
	out     []byte
	counter uint64
	nc      [12]byte
	err     error
	closed  bool
}

// NewEncryptWriter returns a writer that encrypts into dst. Close must be
// called to seal the last chunk; it does not close dst.
func NewEncryptWriter(dst io.Writer, key FileKey) (io.WriteCloser, error) {
	a, err := key.aead()
	if err != nil {
		return nil, err
	}
	return &encryptWriter{dst: dst, aead: a, buf: make([]byte, 0, ChunkSize), out: make([]byte, 0, SealedChunkSize)}, nil
}

func (w *encryptWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("media: write after close")
	}
	n := 0
	for len(p) > 0 {
		// A full chunk is sealed only when more data follows, so that the
		// last chunk is known at Close.
		if len(w.buf) == ChunkSize {
			if w.err = w.seal(false); w.err != nil {
				return n, w.err
			}
		}
		k := copy(w.buf[len(w.buf):ChunkSize], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

func (w *encryptWriter) seal(last bool) error {
	nonce(&w.nc, w.counter, last)
	w.counter++
	w.out = w.aead.Seal(w.out[:0], w.nc[:], w.buf, nil)
	w.buf = w.buf[:0]
	_, err := w.dst.Write(w.out)
	return err
}

func (w *encryptWriter) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	w.err = w.seal(true)
	return w.err
}

// decryptReader opens the chunks read from src.
type decryptReader struct {
	src     io.Reader
	aead    cipherAEAD
	in      []byte // SealedChunkSize+1: one octet of lookahead
	carry   int    // octets of the next chunk already in in
	plain   []byte
	pos     int
	counter uint64
	nc      [12]byte
	done    bool
	err     error
}

// NewDecryptReader returns a reader of the plaintext of the ciphertext
// src. It returns ErrDecrypt when a chunk does not open, and also when src
// ends before a last chunk (truncation) or goes on after one.
func NewDecryptReader(src io.Reader, key FileKey) (io.Reader, error) {
	a, err := key.aead()
	if err != nil {
		return nil, err
	}
	return &decryptReader{src: src, aead: a, in: make([]byte, SealedChunkSize+1), plain: make([]byte, 0, ChunkSize)}, nil
}

func (r *decryptReader) Read(p []byte) (int, error) {
	for r.pos == len(r.plain) {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.err = r.next()
	}
	n := copy(p, r.plain[r.pos:])
	r.pos += n
	return n, nil
}

func (r *decryptReader) next() error {
	n, err := io.ReadFull(r.src, r.in[r.carry:])
	n += r.carry
	r.carry = 0
	last := false
	switch {
	case err == nil: // a full chunk and one more octet: not the last
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	default:
		return err
	}
	chunk := r.in[:min(n, SealedChunkSize)]
	if last && (len(chunk) < TagSize || (len(chunk) == TagSize && r.counter > 0)) {
		return ErrDecrypt // truncated, or an empty last chunk after data
	}
	nonce(&r.nc, r.counter, last)
	r.counter++
	plain, oerr := r.aead.Open(r.plain[:0], r.nc[:], chunk, nil)
	if oerr != nil {
		return ErrDecrypt
	}
	r.plain, r.pos = plain, 0
	if last {
		r.done = true
	} else {
		r.in[0] = r.in[SealedChunkSize]
		r.carry = 1
	}
	return nil
}

// Seal encrypts a whole plaintext held in memory.
func Seal(key FileKey, plaintext []byte) ([]byte, error) {
	out := make([]byte, 0, CiphertextSize(int64(len(plaintext))))
	buf := &appendWriter{b: out}
	w, err := NewEncryptWriter(buf, key)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.b, nil
}

// Open decrypts a whole ciphertext held in memory.
func Open(key FileKey, ciphertext []byte) ([]byte, error) {
	size, err := PlaintextSize(int64(len(ciphertext)))
	if err != nil {
		return nil, err
	}
	r, err := NewDecryptReader(&sliceReader{b: ciphertext}, key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, size)
	buf := &appendWriter{b: out}
	if _, err := io.Copy(buf, r); err != nil {
		return nil, err
	}
	return buf.b, nil
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

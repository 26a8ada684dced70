// Package media stores Parley's files as encrypted, content-addressed
// blobs and reads the metadata messages show for them.
//
// A file is encrypted with a fresh random 32-byte key in 64 KiB chunks of
// ChaCha20-Poly1305, age/STREAM style (each nonce is a chunk counter and a
// last-chunk flag, so reordering, truncation and extension are detected).
// The ciphertext is cut into blocks of 16 chunks; each block is addressed
// by its CIDv1 (raw codec, sha2-256). A blob whose ciphertext fits in one
// block is named by that block's CID, which is then the CID of the whole
// ciphertext; a larger blob is named by a manifest block (DAG-CBOR codec)
// listing its blocks, the ciphertext's size and its SHA-256. Blocks can be
// fetched one by one, in any order, from any holder, and a fetch resumes
// from the blocks still Missing. Every read from a BlobStore re-hashes the
// block. Encryption and decryption stream: memory does not grow with the
// file. Unreferenced finds the blocks that no kept root reaches.
//
// The key and all metadata (name, type, size, dimensions, duration,
// waveform, thumbnail) travel only inside the encrypted message
// (rooms/mimi); a store, a host or a peer sees ciphertext blocks and their
// sizes only.
//
// ImageInfo, Thumbnail, AudioInfo, VideoInfo and Sniff are pure functions
// over bytes: dimensions and a JPEG thumbnail for PNG, JPEG, GIF and WebP
// (VP8, VP8L, VP8X); duration and a waveform for WAV; duration for Ogg
// Opus, Ogg Vorbis, MP3, M4A (MP4/3GPP audio) and WebM/Matroska audio;
// type, dimensions and duration for MP4, QuickTime, 3GPP, WebM and
// Matroska video (VideoInfoAt reads them through an io.ReaderAt, from a
// few kilobytes of headers, without loading the file); a MIME type from
// magic bytes or the file name. What a container does not state is left
// zero, never estimated. The parsers allocate nothing in proportion to a
// length field and stop after a bounded number of steps whatever the
// input claims (fuzz tests check they never panic). A waveform for Opus,
// Vorbis, MP3 or AAC would need an audio decoder, which the standard
// library does not have: those get a duration only.
//
// It must not do network or process I/O and must not read the clock or
// global randomness: no libp2p, no badger, no net (net/http's sniffer
// included), no os/exec, no time, no math/rand, no mime (it reads system
// files); randomness comes from the caller as an io.Reader (deps_test.go
// checks the imports). The fsstore sub-package is the one place that
// touches the file system.
package media

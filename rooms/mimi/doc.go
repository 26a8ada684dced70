// Package mimi reads and writes message bodies in the MIMI content format
// (draft-ietf-mimi-content-08/-09): a deterministic-CBOR array of salt,
// replaces, topicId, expires, inReplyTo, extensions and one nested body part
// (null, single, external or multipart). It computes the draft's message
// IDs, builds the messages Parley sends (rich text with a plain
// alternative, replies, threads, edits, deletions, reactions, attachments
// with Parley's private media extension), derives the plain-text fallback
// of any message, and renders Markdown to sanitized HTML.
//
// Decoding is strict: the input must be the one deterministic encoding
// (RFC 8949 §4.2.1) of a value that fits the draft's schema and limits
// (§6, §9.1), so that one logical message has exactly one encoding and one
// ID. docs/protocol.md 10.1 spells out the ID and docs/design.md §7 the
// test vectors; testdata/draft holds the draft's examples as test vectors.
//
// MIMI content is not DAG-CBOR (integer map keys, bytewise key order): it
// travels as opaque bytes inside the encrypted event body, and IDs are
// computed over exactly those bytes.
//
// It must not do I/O: no libp2p, no badger, no net, no os/exec, no wall
// clock, no global randomness (deps_test.go checks the imports). Salts and
// times come from the caller.
package mimi

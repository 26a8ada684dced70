// Package rbsr implements range-based set reconciliation (RBSR) in the style
// of Negentropy (Aljoscha Meyer, "Range-Based Set Reconciliation"; hoytech
// negentropy protocol v1), adapted to Parley's (depth, event ID) items.
//
// Two parties each hold a sorted, de-duplicated set of [Item]s ordered by
// Depth and then by ID bytewise. The initiator calls [Reconciler.Initiate] and
// then alternates messages with a responder ([Reconciler.Reconcile] on both
// sides) until the initiator's Reconcile returns a nil message. At that point
// [Reconciler.Have] and [Reconciler.Need] on the initiator hold the exact set
// differences. Each message compares 16-byte fingerprints of ranges of the
// sort order. Ranges that differ are split into Config.Branching sub-ranges,
// and small ranges are sent as explicit ID lists. For n items and any number
// of spread-out differences this takes about ⌈log_B(n/T)⌉+1 messages.
//
// What the package does not do:
//   - No I/O, goroutines, clocks or logging. It turns bytes into bytes. Framing,
//     transport, timeouts and moving the events themselves (GET/push) belong to
//     the caller.
//   - No per-peer state on the responder side. A Reconciler that never called
//     Initiate is read-only and may serve many sessions at once.
//   - It does not trust the peer. Any malformed message gives an error, never
//     a panic, and allocation is bounded by the message length. A peer that
//     lies can still make the result incomplete (it can hide its own items or
//     cost extra rounds). Fingerprints are additive, so crafted IDs could
//     collide. Completeness of the event DAG must be checked by the caller
//     (parent closure), not inferred from RBSR alone.
//   - It cannot bound output against an untrusted peer without
//     Config.FrameSizeLimit. Set one (for example 64 KiB) when serving peers
//     you do not trust.
//
// Wire format (version byte 0x51, "Parley RBSR v1"). All integers are
// unsigned LEB128 varints (encoding/binary Uvarint; note that Negentropy uses
// MSB-first varints, so the two are not wire-compatible). A message is the
// version byte followed by zero or more ranges. The ranges tile the item
// space in ascending order, starting at the lowest possible bound. Anything
// after the last range is implicitly Skip. A range is
// Bound ‖ varint(mode) ‖ payload.
//
// A Bound is the exclusive upper end of its range: varint(d) ‖ varint(len) ‖
// prefix. d = 0 means +∞ (then len must be 0). Otherwise depth =
// lastDepth + d − 1, where lastDepth is the depth of the previous bound in
// the same message and starts at 0. prefix is the shortest ID prefix (at most
// 40 bytes) that separates the neighbouring items (it is empty when their
// depths differ). Bounds compare by (depth, prefix) and must strictly
// increase.
//
// The modes are:
//   - 0 Skip: no payload.
//   - 1 Fingerprint: 16 bytes. The fingerprint is SHA-256 of the 32-byte
//     little-endian Σ(v(item)) mod 2^256 followed by varint(count), truncated
//     to 16 bytes. v(item) = digest + depth, where digest is the last 32 bytes
//     of a 36-byte CIDv1 dag-cbor sha2-256 ID (prefix 01 71 12 20), else
//     SHA-256(ID), read as a little-endian integer.
//   - 2 IdList: varint(count) then count items, each varint(depth delta) ‖
//     varint(idLen 1..40) ‖ id. The first delta is relative to the range's
//     lower bound depth, each later one to the previous item. Items are
//     strictly ascending and lie inside the range.
//
// A Fingerprint that differs is answered by splitting the range: an IdList
// when the local count is below IDListThreshold, else up to Branching
// Fingerprint sub-ranges. A responder answers an IdList with its own IdList
// for that range (or with nothing if the lists are equal). The initiator
// resolves IdLists into have/need. With a FrameSizeLimit, ranges that do not
// fit are deferred: the sender echoes the range's fingerprint, or closes the
// message with a single (+∞, Fingerprint) range over everything not yet
// handled, so the peer re-splits them next round. The initiator is done when
// its reply would contain no ranges.
package rbsr

// Package e2ee is the pure key layer of Parley's end-to-end encryption,
// stage 1 (docs/design.md §5, docs/protocol.md 5.1): device KEM keys, key epochs
// and their rotations, key forwards and history back-links, message sealing,
// the admissibility rules as pure functions, safety numbers, and a small
// key store. The room state machine (package rooms) decides when to rotate
// and computes the sets the checks take; the node persists keys and does
// all I/O.
//
// Like the rest of the core it does no I/O: no libp2p, badger, net, os,
// os/exec, wall clock or global randomness (deps_test.go checks the
// imports). Randomness comes from an io.Reader the caller passes; time is a
// millisecond value the caller passes. One exception is documented at
// Rotate: the standard library's HPKE draws its encapsulation randomness
// from crypto/rand and takes no reader.
//
// # Which API to use
//
// A device makes a KEM key with GenerateKEMKey and publishes it with
// SignKEMRecord in its user's device log. To introduce an epoch, call
// Rotate with the KEM records of the member devices at the rotation's
// causal view; put Rotation.Marshal in the event body (or embedded in the
// kick, ban, join or device removal) and the epoch ID in the envelope's
// epoch field; keep the EpochKey in a KeyStore before publishing. A
// receiver calls DecodeRotation, then Rotation.Open with its DeviceKEM. To
// give an existing epoch to devices that lack it, use Forward and
// KeyForward.Open. To read older history of a `shared` room, call
// Rotation.OpenBacklink with the rotation's own epoch key and repeat.
//
// To send a message: fill a crdt.Draft (with Epoch), take DraftHeader,
// EpochKey.Seal the plaintext into Draft.Body, then crdt.Sign the draft
// unchanged. To read one: EventHeader of the decoded event, then
// EpochKey.Open of its body.
//
// The room state machine calls CheckRotation, CheckForward and
// CheckEpochUse with the member device set and cut sets it computed; they
// return an *Inadmissible with a rule and a written reason.
//
// # Primitives and bindings
//
//   - Epoch secret: 32 bytes from the caller's reader. Epoch ID =
//     HKDF-SHA256(secret, salt = room ID bytes (the binary CID), info
//     "parley/v1/epoch-id", 32). Every secret that arrives (wrap, back-link)
//     is checked against its ID (ErrEpochMismatch): the key commitment.
//   - Wrap: HPKE base mode, X-Wing (ML-KEM-768 + X25519) + HKDF-SHA256 +
//     ChaCha20-Poly1305 (crypto/hpke); info = canonical CBOR
//     ["parley/v1/wrap", room, epoch ID, recipient device, SHA-256(
//     "parley/v1/kem-key-id" ‖ recipient KEM public key), sender device];
//     aad = epoch ID; 1168 bytes (enc 1120 ‖ ct 48).
//   - KEM record: {device, kem_pub, seq, sig}, sig = Ed25519 by the device
//     over "parley/v1/kem-record\x00" ‖ canonical CBOR without sig.
//   - Message key = HKDF-SHA256(secret, room, "parley/v1/msg-key", 32).
//     Body = nonce (24 random bytes) ‖ XChaCha20-Poly1305(pad(plaintext)),
//     AAD = canonical CBOR ["parley/v1/msg-aad", v, room, type, skey|null,
//     user, device, seq, self, [prev], [auth], depth, ts, epoch]: the whole
//     envelope except body_hash and sig (they depend on the ciphertext) and
//     cert (a function of user and device). See Header.
//   - Padding: plaintext ‖ 0x80 ‖ 0x00…, to multiples of 256 B up to 4 KiB,
//     then 8, 16, 32 KiB, then 60 KiB (MaxPadded); see PaddedLen.
//   - Back-link key = HKDF-SHA256(new secret, room, "parley/v1/backlink-key",
//     32); back-link = nonce ‖ XChaCha20-Poly1305(CBOR [[epoch ID, secret]…]
//     sorted by ID), AAD = CBOR ["parley/v1/backlink-aad", room, new epoch
//     ID, sender device].
//   - Safety number: libsignal's numeric fingerprint over the two users'
//     master keys; SAS: 7 emoji derived from the same fingerprints.
//
// All labels are constants in labels.go.
//
// # Errors
//
// Failures wrap one of ErrNoKey (the caller lacks the key; not an attack),
// ErrDecrypt (authentication failed, causes not told apart),
// ErrEpochMismatch (a signed author wrapped a wrong secret: evidence),
// ErrMalformed, ErrTooLarge and ErrInadmissible.
//
// # Limits
//
// A rotation costs about 1.2 KB per recipient device (1,209 B measured).
// Events that carry keys may be up to crdt.MaxKeyEventSize (512 KiB), so one
// rotation reaches about 420 devices; beyond that a room needs rotations
// split over several events or a tree scheme (stage 2). Go cannot wipe
// memory reliably: Destroy overwrites what this package holds, nothing more.
package e2ee

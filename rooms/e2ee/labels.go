package e2ee

// Domain-separation labels. Each HKDF info, HPKE info, AAD and signature in
// this package starts with exactly one of them, so that no value made for
// one purpose is ever accepted for another. They are part of the protocol
// (docs/protocol.md); changing one is a new protocol version.
const (
	labelEpochID     = "parley/v1/epoch-id"     // HKDF info: epoch secret -> epoch ID
	labelMsgKey      = "parley/v1/msg-key"      // HKDF info: epoch secret -> message key
	labelMsgAAD      = "parley/v1/msg-aad"      // first element of the message AAD array
	labelBacklinkKey = "parley/v1/backlink-key" // HKDF info: epoch secret -> back-link key
	labelBacklinkAAD = "parley/v1/backlink-aad" // first element of the back-link AAD array
	labelWrap        = "parley/v1/wrap"         // first element of the HPKE info array of a wrap
	labelBox         = "parley/v1/device-box"   // first element of the HPKE info array of a device box
	labelKEMRecord   = "parley/v1/kem-record"   // Ed25519 signature prefix of a KEM key record
	labelKEMKeyID    = "parley/v1/kem-key-id"   // SHA-256 prefix: KEM public key -> fingerprint
	labelSAS         = "parley/v1/sas-emoji"    // HKDF info: safety fingerprints -> emoji bits
)

package e2ee

import "errors"

// Errors. Every error this package returns for a failure to obtain a key or
// a plaintext wraps exactly one of them, so callers test with errors.Is and
// never parse messages.
var (
	// ErrNoKey: the caller does not hold the key needed: no wrap for this
	// device, a wrap to another of its KEM keys, a destroyed key, or a
	// message under another epoch than the key given. Not evidence of an
	// attack; the node may still obtain the key (a forward, an older KEM key).
	ErrNoKey = errors.New("e2ee: no key")

	// ErrDecrypt: an AEAD or HPKE authentication failure. The ciphertext was
	// tampered with, bound to another context (room, epoch, sender,
	// recipient, envelope fields), or made under another key. The causes
	// are deliberately not told apart.
	ErrDecrypt = errors.New("e2ee: decryption failed")

	// ErrEpochMismatch: a wrap or back-link opened, but the secret it carried
	// does not derive to the epoch ID it was published under. Only a
	// malicious author produces this; the signed event is evidence.
	ErrEpochMismatch = errors.New("e2ee: secret does not match its epoch id")

	// ErrMalformed: bytes that do not decode as the structure expected, or a
	// structure that breaks a rule of the format (sorting, sizes, limits).
	ErrMalformed = errors.New("e2ee: malformed")

	// ErrTooLarge: a plaintext larger than MaxPlaintext.
	ErrTooLarge = errors.New("e2ee: plaintext too large")

	// ErrInadmissible: an admissibility check failed; the error is an
	// *Inadmissible carrying the rule and a written reason.
	ErrInadmissible = errors.New("e2ee: inadmissible")
)

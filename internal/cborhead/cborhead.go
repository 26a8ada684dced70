// Package cborhead writes and reads CBOR item heads (RFC 8949 §3) in
// their shortest form, the form canonical CBOR requires. The hand-written
// encoders and decoders of Parley's hottest frames (crdt's transport frame
// and envelope, the sync protocol's events page) share it; everything else
// goes through the CBOR library. It does no I/O and allocates nothing.
package cborhead

// Major types used by the callers.
const (
	Uint  byte = 0
	Neg   byte = 1
	Bytes byte = 2
	Text  byte = 3
	Array byte = 4
	Map   byte = 5
)

// Append appends the shortest head of major type major with argument n.
func Append(dst []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(dst, m|byte(n))
	case n <= 0xff:
		return append(dst, m|24, byte(n))
	case n <= 0xffff:
		return append(dst, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(dst, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// Read reads a definite head of major type major off b and returns its
// argument and what follows it. It reports false for another major type,
// an indefinite length, a head cut short or one longer than needed.
func Read(b []byte, major byte) (n uint64, rest []byte, ok bool) {
	if len(b) == 0 || b[0]>>5 != major {
		return 0, nil, false
	}
	info := b[0] & 0x1f
	var least uint64
	switch {
	case info < 24:
		return uint64(info), b[1:], true
	case info == 24 && len(b) >= 2:
		n, least, b = uint64(b[1]), 24, b[2:]
	case info == 25 && len(b) >= 3:
		n, least, b = uint64(b[1])<<8|uint64(b[2]), 1<<8, b[3:]
	case info == 26 && len(b) >= 5:
		n, least, b = uint64(b[1])<<24|uint64(b[2])<<16|uint64(b[3])<<8|uint64(b[4]), 1<<16, b[5:]
	case info == 27 && len(b) >= 9:
		for _, c := range b[1:9] {
			n = n<<8 | uint64(c)
		}
		least, b = 1<<32, b[9:]
	default:
		return 0, nil, false
	}
	if n < least {
		return 0, nil, false
	}
	return n, b, true
}

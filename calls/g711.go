package calls

// G.711 µ-law (ITU-T G.711, the segment encoding of the reference code):
// 14-bit linear samples to 8-bit codes and back. Browsers decode PCMU, so a
// WAV file is sent as PCMU at 8 kHz.

const (
	ulawBias = 0x84
	ulawClip = 32635
)

// ulawEncode encodes one 16-bit linear sample.
func ulawEncode(s int16) byte {
	v := int(s)
	sign := 0
	if v < 0 {
		v, sign = -v, 0x80
	}
	if v > ulawClip {
		v = ulawClip
	}
	v += ulawBias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}

// ulawDecode decodes one code to a 16-bit linear sample.
func ulawDecode(c byte) int16 {
	c = ^c
	exp := int(c>>4) & 0x07
	mant := int(c & 0x0f)
	v := ((mant << 3) + ulawBias) << exp
	v -= ulawBias
	if c&0x80 != 0 {
		return int16(-v)
	}
	return int16(v)
}

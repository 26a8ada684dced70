package calls

// A VP8 encoder of just what a test pattern needs (RFC 6386): key frames
// whose every macroblock is one flat colour. Each macroblock is predicted
// DC_PRED (luma 16×16 and chroma), and its residual is a single DC
// coefficient: the Y2 block's for the luma, each 4×4 chroma block's for
// the chroma. With the quantizer index 0 (DC factors 8 for Y2 and 4 for
// chroma) a luma residual r is the Y2 coefficient 8r and a chroma residual
// r the coefficient 2r, so every macroblock comes out exactly at its
// colour. No pure-Go encoder of real pictures exists; this one lets the
// daemon's peer send video that every WebRTC stack decodes.

// boolEncoder is VP8's boolean entropy encoder (RFC 6386, section 7.3).
type boolEncoder struct {
	out      []byte
	rng      uint32
	bottom   uint32
	bitCount int
}

func newBoolEncoder() *boolEncoder { return &boolEncoder{rng: 255, bitCount: 24} }

func (e *boolEncoder) carry() {
	for i := len(e.out) - 1; i >= 0; i-- {
		e.out[i]++
		if e.out[i] != 0 {
			return
		}
	}
}

// put writes one bit whose probability of being 0 is prob/256.
func (e *boolEncoder) put(bit bool, prob uint8) {
	split := 1 + ((e.rng - 1) * uint32(prob) >> 8)
	if bit {
		e.bottom += split
		e.rng -= split
	} else {
		e.rng = split
	}
	for e.rng < 128 {
		e.rng <<= 1
		if e.bottom&(1<<31) != 0 {
			e.carry()
		}
		e.bottom <<= 1
		e.bitCount--
		if e.bitCount == 0 {
			e.out = append(e.out, byte(e.bottom>>24))
			e.bottom &= 1<<24 - 1
			e.bitCount = 8
		}
	}
}

// literal writes v's n low bits, most significant first, each at 1/2.
func (e *boolEncoder) literal(v uint32, n int) {
	for i := n - 1; i >= 0; i-- {
		e.put(v>>uint(i)&1 == 1, 128)
	}
}

func (e *boolEncoder) flush() []byte {
	c, v := e.bitCount, e.bottom
	if v&(1<<(32-c)) != 0 {
		e.carry()
	}
	v <<= uint(c & 7)
	for c >>= 3; c > 0; c-- {
		v <<= 8
	}
	for range 4 {
		e.out = append(e.out, byte(v>>24))
		v <<= 8
	}
	return e.out
}

// yuv is a macroblock's colour.
type yuv struct{ y, u, v uint8 }

// vp8Bands maps a coefficient's index to its band.
var vp8Bands = [17]uint8{0, 1, 2, 3, 6, 4, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 0}

// vp8Cat3456 are the extra bits' probabilities of token categories 3 to 6.
var vp8Cat3456 = [4][]uint8{
	{173, 148, 140},
	{176, 155, 140, 135},
	{180, 157, 141, 134, 130},
	{254, 254, 243, 230, 196, 177, 153, 140, 133, 130, 129},
}

// putDC writes a block whose only coefficient is its first, v, with the
// token probabilities of plane and context ctx (RFC 6386, section 13),
// and says whether the block has a coefficient (the next blocks' context).
func putDC(e *boolEncoder, plane int, ctx uint8, v int) uint8 {
	p := &vp8DefaultTokenProb[plane][vp8Bands[0]][ctx]
	if v == 0 {
		e.put(false, p[0]) // end of block at once
		return 0
	}
	e.put(true, p[0])
	e.put(true, p[1]) // not a zero
	a := v
	if a < 0 {
		a = -a
	}
	next := uint8(2)
	switch {
	case a == 1:
		e.put(false, p[2])
		next = 1
	case a <= 4:
		e.put(true, p[2])
		e.put(false, p[3])
		if a == 2 {
			e.put(false, p[4])
		} else {
			e.put(true, p[4])
			e.put(a == 4, p[5])
		}
	case a <= 10:
		e.put(true, p[2])
		e.put(true, p[3])
		e.put(false, p[6])
		if a <= 6 {
			e.put(false, p[7])
			e.put(a == 6, 159)
		} else {
			e.put(true, p[7])
			e.put((a-7)>>1 == 1, 165)
			e.put((a-7)&1 == 1, 145)
		}
	default:
		e.put(true, p[2])
		e.put(true, p[3])
		e.put(true, p[6])
		cat := 0
		for cat < 3 && a >= 3+(8<<(cat+1)) {
			cat++
		}
		e.put(cat>>1 == 1, p[8])
		e.put(cat&1 == 1, p[9+cat>>1])
		extra := a - (3 + 8<<cat)
		tab := vp8Cat3456[cat]
		for i, pr := range tab {
			e.put(extra>>(len(tab)-1-i)&1 == 1, pr)
		}
	}
	e.put(v < 0, 128)
	// The second coefficient: the end of the block.
	e.put(false, vp8DefaultTokenProb[plane][vp8Bands[1]][next][0])
	return 1
}

// maxDC is the largest coefficient putDC writes (category 6).
const maxDC = 3 + 8<<3 + 1<<11 - 1

// vp8KeyFrame encodes a key frame of w×h pixels (multiples of 16) whose
// macroblock at column x and row y is colour(x, y).
func vp8KeyFrame(w, h int, colour func(x, y int) yuv) []byte {
	mbw, mbh := w/16, h/16
	hdr, tok := newBoolEncoder(), newBoolEncoder()
	hdr.literal(0, 1) // colour space
	hdr.literal(0, 1) // clamping required
	hdr.literal(0, 1) // no segmentation
	hdr.literal(0, 1) // normal loop filter
	hdr.literal(0, 6) // loop filter level 0: none
	hdr.literal(0, 3) // sharpness
	hdr.literal(0, 1) // no loop filter deltas
	hdr.literal(0, 2) // one token partition
	hdr.literal(0, 7) // quantizer index 0
	hdr.literal(0, 5) // no quantizer deltas
	hdr.literal(0, 1) // refresh entropy probabilities: no (key frame)
	for i := range vp8TokenUpdateProb {
		for j := range vp8TokenUpdateProb[i] {
			for k := range vp8TokenUpdateProb[i][j] {
				for _, pr := range vp8TokenUpdateProb[i][j][k] {
					hdr.put(false, pr) // the defaults stand
				}
			}
		}
	}
	hdr.literal(0, 1) // no skip flags: every macroblock has tokens
	// What each macroblock above (by column) and to the left holds: its
	// colour and whether its Y2, U and V blocks have a coefficient.
	type mb struct {
		c        yuv
		y2, u, v uint8
	}
	up := make([]mb, mbw)
	for y := range mbh {
		var left mb
		for x := range mbw {
			hdr.put(true, 145)  // not B_PRED
			hdr.put(false, 156) // DC_PRED or V_PRED
			hdr.put(false, 163) // DC_PRED
			hdr.put(false, 142) // chroma DC_PRED
			pred := func(get func(mb) uint8) int {
				switch {
				case x > 0 && y > 0:
					return (int(get(left)) + int(get(up[x])) + 1) >> 1
				case x > 0:
					return int(get(left))
				case y > 0:
					return int(get(up[x]))
				}
				return 128
			}
			want := colour(x, y)
			cur := mb{c: want}
			var upNZ, leftNZ mb
			if y > 0 {
				upNZ = up[x]
			}
			if x > 0 {
				leftNZ = left
			}
			cur.y2 = putDC(tok, 1, upNZ.y2+leftNZ.y2, 8*(int(want.y)-pred(func(m mb) uint8 { return m.c.y })))
			for range 16 {
				tok.put(false, vp8DefaultTokenProb[0][vp8Bands[1]][0][0]) // luma blocks: nothing
			}
			for _, ch := range []struct {
				nz   func(m mb) uint8
				set  func(m *mb, nz uint8)
				comp func(m mb) uint8
			}{
				{func(m mb) uint8 { return m.u }, func(m *mb, nz uint8) { m.u = nz }, func(m mb) uint8 { return m.c.u }},
				{func(m mb) uint8 { return m.v }, func(m *mb, nz uint8) { m.v = nz }, func(m mb) uint8 { return m.c.v }},
			} {
				r := 2 * (int(ch.comp(cur)) - pred(ch.comp))
				var nz uint8
				for i := range 4 {
					above, before := ch.nz(upNZ), ch.nz(leftNZ)
					if i >= 2 {
						above = nz
					}
					if i%2 == 1 {
						before = nz
					}
					nz = putDC(tok, 2, above+before, r)
				}
				ch.set(&cur, nz)
			}
			left, up[x] = cur, cur
		}
	}
	first, tokens := hdr.flush(), tok.flush()
	size := len(first)
	out := make([]byte, 0, 10+len(first)+len(tokens))
	// Frame tag: key frame, version 0, shown, the first partition's size.
	tag := uint32(size)<<5 | 1<<4
	out = append(out, byte(tag), byte(tag>>8), byte(tag>>16))
	out = append(out, 0x9d, 0x01, 0x2a, byte(w), byte(w>>8)&0x3f, byte(h), byte(h>>8)&0x3f)
	out = append(out, first...)
	return append(out, tokens...)
}

// Test pattern colours (BT.601, studio range): 75 % colour bars.
var barColours = []yuv{
	{180, 128, 128}, // white
	{162, 44, 142},  // yellow
	{131, 156, 44},  // cyan
	{112, 72, 58},   // green
	{84, 184, 198},  // magenta
	{65, 100, 212},  // red
	{35, 212, 114},  // blue
	{16, 128, 128},  // black
}

// patternColour is the test pattern's frame n at macroblock (x, y) of a
// picture mbw macroblocks wide and mbh high: colour bars, a white square
// running along the middle row, and a bottom row that darkens and
// brightens, so that every frame differs.
func patternColour(n, mbw, mbh int) func(x, y int) yuv {
	return func(x, y int) yuv {
		switch {
		case y == mbh/2 && x == n%mbw:
			return yuv{235, 128, 128}
		case y == mbh-1:
			l := n % 64
			if l >= 32 {
				l = 63 - l
			}
			return yuv{uint8(16 + 6*l), 128, 128}
		}
		return barColours[x*len(barColours)/mbw]
	}
}

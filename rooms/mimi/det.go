package mimi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/x448/float16"
)

// errNotDeterministic wraps every way an input can fail to be the one
// deterministic encoding (RFC 8949 §4.2.1, MIMI §6.1, §6.2).
var errNotDeterministic = errors.New("not deterministic CBOR")

// maxCBORDepth bounds nesting of arrays, maps and tags anywhere in a
// message; the schema checks tighter limits afterwards.
const maxCBORDepth = 16

// head reads the initial byte and argument of the item at off. For floats
// (major 7, ai 25..27) val holds the raw bits.
func head(b []byte, off int) (major byte, ai byte, val uint64, next int, err error) {
	if off >= len(b) {
		return 0, 0, 0, 0, fmt.Errorf("truncated at %d", off)
	}
	major, ai = b[off]>>5, b[off]&0x1f
	off++
	var n int
	switch {
	case ai < 24:
		return major, ai, uint64(ai), off, nil
	case ai == 24:
		n = 1
	case ai == 25:
		n = 2
	case ai == 26:
		n = 4
	case ai == 27:
		n = 8
	case ai == 31:
		return 0, 0, 0, 0, fmt.Errorf("%w: indefinite length at %d", errNotDeterministic, off-1)
	default:
		return 0, 0, 0, 0, fmt.Errorf("reserved additional information at %d", off-1)
	}
	if len(b)-off < n {
		return 0, 0, 0, 0, fmt.Errorf("truncated at %d", off)
	}
	switch n {
	case 1:
		val = uint64(b[off])
	case 2:
		val = uint64(binary.BigEndian.Uint16(b[off:]))
	case 4:
		val = uint64(binary.BigEndian.Uint32(b[off:]))
	case 8:
		val = binary.BigEndian.Uint64(b[off:])
	}
	if major != 7 {
		// Shortest form: the argument must not fit a shorter encoding.
		min := [...]uint64{1: 24, 2: 0x100, 4: 0x10000, 8: 0x100000000}[n]
		if val < min {
			return 0, 0, 0, 0, fmt.Errorf("%w: non-shortest argument at %d", errNotDeterministic, off-1)
		}
	}
	return major, ai, val, off + n, nil
}

// skip checks the item at off and returns the offset after it. It accepts
// only deterministic encodings: shortest arguments, definite lengths,
// map keys in strictly ascending bytewise order, valid UTF-8, shortest
// floats with the single NaN f97e00, and the simple values false, true and
// null.
func skip(b []byte, off, depth int) (int, error) {
	major, ai, val, next, err := head(b, off)
	if err != nil {
		return 0, err
	}
	remaining := uint64(len(b) - next)
	switch major {
	case 0, 1:
		return next, nil
	case 2, 3:
		if val > remaining {
			return 0, fmt.Errorf("truncated string at %d", off)
		}
		end := next + int(val)
		if major == 3 && !utf8.Valid(b[next:end]) {
			return 0, fmt.Errorf("invalid UTF-8 at %d", off)
		}
		return end, nil
	case 4, 5:
		if depth >= maxCBORDepth {
			return 0, fmt.Errorf("nested deeper than %d at %d", maxCBORDepth, off)
		}
		n := val
		if major == 5 {
			if n > remaining/2 {
				return 0, fmt.Errorf("truncated map at %d", off)
			}
			n *= 2
		} else if n > remaining {
			return 0, fmt.Errorf("truncated array at %d", off)
		}
		var prevKey []byte
		for i := uint64(0); i < n; i++ {
			start := next
			next, err = skip(b, next, depth+1)
			if err != nil {
				return 0, err
			}
			if major == 5 && i%2 == 0 {
				key := b[start:next]
				if prevKey != nil && bytes.Compare(prevKey, key) >= 0 {
					return 0, fmt.Errorf("%w: map keys unsorted or duplicate at %d", errNotDeterministic, start)
				}
				prevKey = key
			}
		}
		return next, nil
	case 6:
		if depth >= maxCBORDepth {
			return 0, fmt.Errorf("nested deeper than %d at %d", maxCBORDepth, off)
		}
		return skip(b, next, depth+1)
	default: // 7
		switch ai {
		case 20, 21, 22: // false, true, null
			return next, nil
		case 25:
			if val&0x7c00 == 0x7c00 && val&0x3ff != 0 && val != 0x7e00 {
				return 0, fmt.Errorf("%w: NaN other than f97e00 at %d", errNotDeterministic, off)
			}
			return next, nil
		case 26:
			f := math.Float32frombits(uint32(val))
			if f != f || float16.PrecisionFromfloat32(f) == float16.PrecisionExact {
				return 0, fmt.Errorf("%w: float32 not shortest at %d", errNotDeterministic, off)
			}
			return next, nil
		case 27:
			f := math.Float64frombits(val)
			if f != f || float64(float32(f)) == f {
				return 0, fmt.Errorf("%w: float64 not shortest at %d", errNotDeterministic, off)
			}
			return next, nil
		}
		return 0, fmt.Errorf("simple value %d not allowed at %d", val, off)
	}
}

// checkDeterministic checks that b is exactly one deterministic item.
func checkDeterministic(b []byte) error {
	end, err := skip(b, 0, 0)
	if err != nil {
		return err
	}
	if end != len(b) {
		return fmt.Errorf("%d trailing bytes", len(b)-end)
	}
	return nil
}

// containerDepth returns how deeply arrays, maps and tags nest in the
// (already checked) item b: 0 for a scalar.
func containerDepth(b []byte) int {
	major, _, val, next, err := head(b, 0)
	if err != nil {
		return 0
	}
	switch major {
	case 4, 5:
		n := val
		if major == 5 {
			n *= 2
		}
		d := 0
		for i := uint64(0); i < n; i++ {
			end, err := skip(b, next, 0)
			if err != nil {
				return maxCBORDepth
			}
			d = max(d, containerDepth(b[next:end]))
			next = end
		}
		return 1 + d
	case 6:
		return 1 + containerDepth(b[next:])
	}
	return 0
}

// elements splits the array (major 4) or map (major 5, as key, value, key,
// value...) b into its raw items. b has passed checkDeterministic.
func elements(b []byte, major byte) ([][]byte, error) {
	m, _, val, next, err := head(b, 0)
	if err != nil {
		return nil, err
	}
	if m != major {
		return nil, fmt.Errorf("want major type %d, have %d", major, m)
	}
	if major == 5 {
		val *= 2
	}
	if val > uint64(len(b)) {
		return nil, errors.New("truncated")
	}
	out := make([][]byte, 0, val)
	for i := uint64(0); i < val; i++ {
		end, err := skip(b, next, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, b[next:end])
		next = end
	}
	return out, nil
}

// appendHead appends a head with the shortest argument.
func appendHead(b []byte, major byte, v uint64) []byte {
	m := major << 5
	switch {
	case v < 24:
		return append(b, m|byte(v))
	case v <= math.MaxUint8:
		return append(b, m|24, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, m|27), v)
	}
}

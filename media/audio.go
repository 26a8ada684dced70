package media

import (
	"encoding/binary"
	"errors"
	"math"
)

// Audio is what a message says about audio.
type Audio struct {
	MIME       string
	DurationMs uint32
	// Waveform is the loudness (RMS) of WaveformBuckets equal slices of
	// the sound, scaled so that the loudest is 255; nil where the format
	// cannot be decoded here (Ogg: duration only).
	Waveform []byte
}

// WaveformBuckets is the length of a waveform.
const WaveformBuckets = 64

// ErrNotAudio is returned for data AudioInfo cannot read.
var ErrNotAudio = errors.New("media: not a WAV or Ogg (Opus, Vorbis) file")

// AudioInfo reads the duration of a WAV (PCM 8/16/24/32-bit integer or
// 32/64-bit float), Ogg Opus or Ogg Vorbis file, and a waveform for WAV.
// Decoding Opus and Vorbis for a waveform is not done (no pure-Go decoder
// is vendored); MP3 and M4A are not read.
func AudioInfo(data []byte) (Audio, error) {
	switch {
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WAVE":
		return wavInfo(data)
	case len(data) >= 4 && string(data[:4]) == "OggS":
		return oggInfo(data)
	}
	return Audio{}, ErrNotAudio
}

func wavInfo(data []byte) (Audio, error) {
	var (
		format, channels, blockAlign, bits uint16
		rate                               uint32
		pcm                                []byte
		haveFmt                            bool
	)
	for off := 12; off+8 <= len(data); {
		id := string(data[off : off+4])
		size := int(binary.LittleEndian.Uint32(data[off+4:]))
		body := data[off+8:]
		if size > len(body) || size < 0 {
			size = len(body) // streamed or truncated files
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return Audio{}, ErrNotAudio
			}
			format = binary.LittleEndian.Uint16(body)
			channels = binary.LittleEndian.Uint16(body[2:])
			rate = binary.LittleEndian.Uint32(body[4:])
			blockAlign = binary.LittleEndian.Uint16(body[12:])
			bits = binary.LittleEndian.Uint16(body[14:])
			if format == 0xfffe && len(body) >= 26 { // WAVE_FORMAT_EXTENSIBLE: sub-format GUID
				format = binary.LittleEndian.Uint16(body[24:])
			}
			haveFmt = true
		case "data":
			pcm = body
		}
		off += 8 + size + size&1
	}
	if !haveFmt || pcm == nil || rate == 0 || channels == 0 || blockAlign == 0 {
		return Audio{}, ErrNotAudio
	}
	frames := len(pcm) / int(blockAlign)
	a := Audio{MIME: "audio/wav", DurationMs: uint32(min(uint64(frames)*1000/uint64(rate), math.MaxUint32))}
	sample := sampleReader(format, bits)
	width := int(bits+7) / 8
	if sample == nil || width*int(channels) > int(blockAlign) || frames == 0 {
		return a, nil // duration only
	}
	rms := make([]float64, WaveformBuckets)
	for b := range WaveformBuckets {
		f0, f1 := frames*b/WaveformBuckets, frames*(b+1)/WaveformBuckets
		var sum float64
		n := 0
		// At most 4096 frames per bucket: a waveform, not a measurement.
		step := max(1, (f1-f0)/4096)
		for f := f0; f < f1; f += step {
			frame := pcm[f*int(blockAlign):]
			for ch := range int(channels) {
				v := sample(frame[ch*width:])
				sum += v * v
				n++
			}
		}
		if n > 0 {
			rms[b] = math.Sqrt(sum / float64(n))
		}
	}
	top := 0.0
	for _, v := range rms {
		top = math.Max(top, v)
	}
	a.Waveform = make([]byte, WaveformBuckets)
	if top > 0 {
		for i, v := range rms {
			a.Waveform[i] = uint8(math.Round(v / top * 255))
		}
	}
	return a, nil
}

// sampleReader returns a function reading one sample as a value in
// [-1, 1], or nil for encodings not read here.
func sampleReader(format, bits uint16) func([]byte) float64 {
	switch {
	case format == 1 && bits == 8:
		return func(b []byte) float64 { return (float64(b[0]) - 128) / 128 }
	case format == 1 && bits == 16:
		return func(b []byte) float64 { return float64(int16(binary.LittleEndian.Uint16(b))) / 32768 }
	case format == 1 && bits == 24:
		return func(b []byte) float64 {
			v := int32(uint32(b[0])<<8|uint32(b[1])<<16|uint32(b[2])<<24) >> 8
			return float64(v) / (1 << 23)
		}
	case format == 1 && bits == 32:
		return func(b []byte) float64 { return float64(int32(binary.LittleEndian.Uint32(b))) / (1 << 31) }
	case format == 3 && bits == 32:
		return func(b []byte) float64 {
			return clampUnit(float64(math.Float32frombits(binary.LittleEndian.Uint32(b))))
		}
	case format == 3 && bits == 64:
		return func(b []byte) float64 { return clampUnit(math.Float64frombits(binary.LittleEndian.Uint64(b))) }
	}
	return nil
}

func clampUnit(v float64) float64 {
	if v != v {
		return 0
	}
	return math.Max(-1, math.Min(1, v))
}

// oggInfo reads the duration of an Ogg Opus or Vorbis stream from the
// identification header of the first page and the granule position of the
// last page.
func oggInfo(data []byte) (Audio, error) {
	first, ok := oggPage(data, 0)
	if !ok {
		return Audio{}, ErrNotAudio
	}
	var rate, preSkip uint64
	var mime string
	switch p := first.payload; {
	case len(p) >= 19 && string(p[:8]) == "OpusHead":
		rate, preSkip, mime = 48000, uint64(binary.LittleEndian.Uint16(p[10:])), "audio/ogg; codecs=opus"
	case len(p) >= 16 && string(p[:7]) == "\x01vorbis":
		rate, mime = uint64(binary.LittleEndian.Uint32(p[12:])), "audio/ogg; codecs=vorbis"
	default:
		return Audio{}, ErrNotAudio
	}
	if rate == 0 {
		return Audio{}, ErrNotAudio
	}
	// The last page whose header parses and whose serial matches.
	var granule uint64
	for off := len(data) - 27; off >= 0; off-- {
		if data[off] != 'O' || string(data[off:off+4]) != "OggS" {
			continue
		}
		if p, ok := oggPage(data, off); ok && p.serial == first.serial && p.granule != math.MaxUint64 {
			granule = p.granule
			break
		}
	}
	a := Audio{MIME: mime}
	if granule > preSkip {
		a.DurationMs = uint32(min((granule-preSkip)*1000/rate, math.MaxUint32))
	}
	return a, nil
}

type oggPageInfo struct {
	granule uint64
	serial  uint32
	payload []byte
}

func oggPage(data []byte, off int) (oggPageInfo, bool) {
	if off+27 > len(data) || string(data[off:off+4]) != "OggS" || data[off+4] != 0 {
		return oggPageInfo{}, false
	}
	nseg := int(data[off+26])
	if off+27+nseg > len(data) {
		return oggPageInfo{}, false
	}
	size := 0
	for _, l := range data[off+27 : off+27+nseg] {
		size += int(l)
	}
	start := off + 27 + nseg
	if start+size > len(data) {
		return oggPageInfo{}, false
	}
	return oggPageInfo{
		granule: binary.LittleEndian.Uint64(data[off+6:]),
		serial:  binary.LittleEndian.Uint32(data[off+14:]),
		payload: data[start : start+size],
	}, true
}

package media

import (
	"bytes"
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
	// cannot be decoded here (everything but WAV: duration only).
	Waveform []byte
}

// WaveformBuckets is the length of a waveform.
const WaveformBuckets = 64

// ErrNotAudio is returned for data AudioInfo cannot read.
var ErrNotAudio = errors.New("media: not a WAV, Ogg (Opus, Vorbis), MP3, AAC, M4A or WebM audio file")

// AudioInfo reads the type and duration of a whole audio file, and a
// waveform for WAV:
//   - WAV (PCM 8/16/24/32-bit integer or 32/64-bit float): duration and
//     waveform;
//   - Ogg Opus and Ogg Vorbis: duration from the last page's granule
//     position (less Opus's pre-skip);
//   - MP3 (MPEG audio layer I-III): duration from a Xing/Info or VBRI
//     header, else from the frames themselves;
//   - AAC in ADTS framing (.aac): duration from the frames;
//   - M4A and other MP4/3GPP files with a sound track and no video track:
//     duration from mvhd (or mehd, or the track's mdhd);
//   - WebM and Matroska with an audio track and no video track: duration
//     from Segment Info, when the file states it (live recordings often
//     do not: the duration is then 0).
//
// Files with a video track are refused (see VideoInfo). A waveform for
// Opus, Vorbis, MP3 or AAC would need decoding the audio, which the
// standard library cannot do and no pure-Go decoder is vendored for.
func AudioInfo(data []byte) (Audio, error) {
	switch {
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WAVE":
		return wavInfo(data)
	case len(data) >= 4 && string(data[:4]) == "OggS":
		return oggInfo(data)
	}
	r := newReader(bytes.NewReader(data), int64(len(data)))
	if b, ok := readBMFF(r); ok {
		return b.audio()
	}
	if e, ok := readEBML(r); ok {
		return e.audio()
	}
	if a, ok := mp3Info(data); ok {
		return a, nil
	}
	if a, ok := adtsInfo(data); ok {
		return a, nil
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

// oggInfo reads the duration of an Ogg Opus or Vorbis stream from its
// identification header (on its beginning-of-stream page) and the granule
// position of its last page. A file multiplexing a video stream (Theora,
// Daala, Dirac) is not audio.
func oggInfo(data []byte) (Audio, error) {
	var (
		first         oggPageInfo
		rate, preSkip uint64
		mime          string
	)
	// The beginning-of-stream pages of all streams come first.
	for off := 0; ; {
		p, ok := oggPage(data, off)
		if !ok || (off > 0 && p.flags&0x02 == 0) { // (the first page is taken as one)
			break
		}
		switch pl := p.payload; {
		case len(pl) >= 19 && string(pl[:8]) == "OpusHead" && mime == "":
			first, rate, preSkip, mime = p, 48000, uint64(binary.LittleEndian.Uint16(pl[10:])), "audio/ogg; codecs=opus"
		case len(pl) >= 16 && string(pl[:7]) == "\x01vorbis" && mime == "":
			first, rate, mime = p, uint64(binary.LittleEndian.Uint32(pl[12:])), "audio/ogg; codecs=vorbis"
		case len(pl) >= 7 && (string(pl[:7]) == "\x80theora" || string(pl[:6]) == "\x80daala" || string(pl[:5]) == "BBCD\x00"):
			return Audio{}, ErrNotAudio
		}
		off = p.end
	}
	if mime == "" || rate == 0 {
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
		a.DurationMs = durationMs(granule-preSkip, rate)
	}
	return a, nil
}

type oggPageInfo struct {
	flags   byte // header type: 0x02 beginning of stream
	end     int  // offset of the next page
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
		flags:   data[off+5],
		end:     start + size,
		granule: binary.LittleEndian.Uint64(data[off+6:]),
		serial:  binary.LittleEndian.Uint32(data[off+14:]),
		payload: data[start : start+size],
	}, true
}

package calls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// frame is the duration of one G.711 sample sent (and of silence).
const frame = 20 * time.Millisecond

// maxSendFile bounds an audio file read into memory.
const maxSendFile = 64 << 20

var (
	pcmu = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}
	opus = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}
)

// source is what the peer sends: samples in order, played in a loop.
type source struct {
	codec   webrtc.RTPCodecCapability
	samples []media.Sample
}

// openSource reads an audio file: Ogg Opus, or WAV (16-bit PCM, any rate,
// mono or stereo) encoded to G.711 µ-law; "" is silence.
func openSource(path string) (*source, error) {
	if path == "" {
		return &source{codec: pcmu, samples: []media.Sample{{Data: bytes.Repeat([]byte{0xff}, 160), Duration: frame}}}, nil
	}
	b, err := readSendFile(path, "audio", ErrAudio)
	if err != nil {
		return nil, err
	}
	return sourceOf(b)
}

// readSendFile reads a file to send, of at most maxSendFile bytes.
func readSendFile(path, what string, tooLarge error) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s file: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSendFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s file: %w", what, err)
	}
	if len(b) > maxSendFile {
		return nil, fmt.Errorf("%w: %s file over %d MiB", tooLarge, what, maxSendFile>>20)
	}
	return b, nil
}

// sourceOf decodes an audio file's bytes.
func sourceOf(b []byte) (*source, error) {
	switch {
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WAVE":
		return wavSource(b)
	case len(b) >= 4 && string(b[:4]) == "OggS":
		return oggSource(b)
	}
	return nil, fmt.Errorf("%w: neither WAV nor Ogg", ErrAudio)
}

// ErrAudio is a file the peer cannot send.
var ErrAudio = errors.New("calls: unsupported audio file")

// oggSource cuts an Ogg Opus file into its Opus packets (pion's oggreader
// checks each page; the page's segment table, read at the page's offset,
// splits it into packets), each a sample as long as its TOC byte says.
func oggSource(b []byte) (*source, error) {
	r, h, err := oggreader.NewWith(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAudio, err)
	}
	if h.Channels == 0 {
		return nil, fmt.Errorf("%w: not Ogg Opus", ErrAudio)
	}
	s := &source{codec: opus}
	off := pageLen(b, 0) // the OpusHead page, read by NewWith
	for off > 0 && off < len(b) {
		page, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrAudio, err)
		}
		n := pageLen(b, off)
		if n <= 0 {
			break
		}
		segs := b[off+27 : off+27+int(b[off+26])]
		off += n
		if bytes.HasPrefix(page, []byte("OpusTags")) {
			continue
		}
		var pkt []byte
		for _, l := range segs {
			if int(l) > len(page) {
				break
			}
			pkt, page = append(pkt, page[:l]...), page[l:]
			if l < 255 { // a packet ends (one continued to the next page is dropped)
				if d := opusDuration(pkt); d > 0 {
					s.samples = append(s.samples, media.Sample{Data: pkt, Duration: d})
				}
				pkt = nil
			}
		}
	}
	if len(s.samples) == 0 {
		return nil, fmt.Errorf("%w: no Opus audio in the file", ErrAudio)
	}
	return s, nil
}

// pageLen is the length of the Ogg page at off, 0 if there is none.
func pageLen(b []byte, off int) int {
	if off+27 > len(b) || string(b[off:off+4]) != "OggS" {
		return 0
	}
	ns := int(b[off+26])
	if off+27+ns > len(b) {
		return 0
	}
	n := 27 + ns
	for _, l := range b[off+27 : off+27+ns] {
		n += int(l)
	}
	if off+n > len(b) {
		return 0
	}
	return n
}

// opusDuration is how long an Opus packet plays (RFC 6716 3.1), 0 for a
// malformed one.
func opusDuration(p []byte) time.Duration {
	if len(p) == 0 {
		return 0
	}
	cfg := p[0] >> 3
	var fr time.Duration
	switch {
	case cfg < 12:
		fr = []time.Duration{10, 20, 40, 60}[cfg%4] * time.Millisecond
	case cfg < 16:
		fr = []time.Duration{10, 20}[cfg%2] * time.Millisecond
	default:
		fr = []time.Duration{2500, 5000, 10000, 20000}[cfg%4] * time.Microsecond
	}
	n := 1
	switch p[0] & 3 {
	case 1, 2:
		n = 2
	case 3:
		if len(p) < 2 {
			return 0
		}
		n = int(p[1] & 0x3f)
	}
	if d := fr * time.Duration(n); d > 0 && d <= 120*time.Millisecond {
		return d
	}
	return 0
}

// wavSource decodes 16-bit PCM, mixes it to mono, resamples it to 8 kHz
// (a box filter, then linear interpolation) and encodes it to µ-law in
// 20 ms samples.
func wavSource(b []byte) (*source, error) {
	pcm, rate, ch, err := readWAV(b)
	if err != nil {
		return nil, err
	}
	frames := len(pcm) / ch
	mono := make([]float64, frames)
	for i := range frames {
		var sum float64
		for c := range ch {
			sum += float64(pcm[i*ch+c])
		}
		mono[i] = sum / float64(ch)
	}
	ratio := float64(rate) / 8000
	out := make([]byte, 0, int(float64(frames)/ratio)+1)
	for i := 0; ; i++ {
		pos := float64(i) * ratio
		lo := int(pos)
		if lo >= frames {
			break
		}
		// average over the input span of one output sample
		hi := min(frames, int(pos+ratio)+1)
		var sum float64
		for j := lo; j < hi; j++ {
			sum += mono[j]
		}
		v := sum / float64(hi-lo)
		out = append(out, ulawEncode(int16(max(-32768, min(32767, v)))))
	}
	s := &source{codec: pcmu}
	for len(out) > 0 {
		n := min(160, len(out))
		s.samples = append(s.samples, media.Sample{Data: out[:n], Duration: time.Duration(n) * time.Second / 8000})
		out = out[n:]
	}
	if len(s.samples) == 0 {
		return nil, fmt.Errorf("%w: the WAV file holds no audio", ErrAudio)
	}
	return s, nil
}

// readWAV reads a RIFF WAVE file of 16-bit PCM.
func readWAV(b []byte) (pcm []int16, rate, channels int, err error) {
	bad := func(why string) ([]int16, int, int, error) {
		return nil, 0, 0, fmt.Errorf("%w: WAV %s", ErrAudio, why)
	}
	var data []byte
	var fmtOK bool
	for p := 12; p+8 <= len(b); {
		id, n := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:p+8]))
		p += 8
		if n < 0 || n > len(b)-p {
			n = len(b) - p // a truncated last chunk: take what is there
		}
		body := b[p : p+n]
		switch id {
		case "fmt ":
			if n < 16 {
				return bad("format chunk too short")
			}
			format := binary.LittleEndian.Uint16(body[0:2])
			channels = int(binary.LittleEndian.Uint16(body[2:4]))
			rate = int(binary.LittleEndian.Uint32(body[4:8]))
			bits := binary.LittleEndian.Uint16(body[14:16])
			if (format != 1 && format != 0xfffe) || bits != 16 {
				return bad("is not 16-bit PCM (convert it, e.g. ffmpeg -i IN -c:a pcm_s16le OUT.wav)")
			}
			if channels < 1 || channels > 8 || rate < 1000 || rate > 384000 {
				return bad("has an implausible rate or channel count")
			}
			fmtOK = true
		case "data":
			data = body
		}
		p += n + n&1
	}
	if !fmtOK || data == nil {
		return bad("has no format or data chunk")
	}
	pcm = make([]int16, len(data)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
	}
	pcm = pcm[:len(pcm)/channels*channels]
	return pcm, rate, channels, nil
}

// wavWriter writes 8 kHz mono 16-bit PCM; Close fills in the sizes.
type wavWriter struct {
	f *os.File
	n uint32
}

func newWAVWriter(path string) (*wavWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	w := &wavWriter{f: f}
	if _, err := f.Write(wavHeader(0)); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

func wavHeader(dataLen uint32) []byte {
	h := make([]byte, 44)
	copy(h, "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 36+dataLen)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)      // PCM
	binary.LittleEndian.PutUint16(h[22:], 1)      // mono
	binary.LittleEndian.PutUint32(h[24:], 8000)   // rate
	binary.LittleEndian.PutUint32(h[28:], 8000*2) // byte rate
	binary.LittleEndian.PutUint16(h[32:], 2)      // block align
	binary.LittleEndian.PutUint16(h[34:], 16)     // bits
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], dataLen)
	return h
}

// writeULaw decodes µ-law codes and appends them.
func (w *wavWriter) writeULaw(codes []byte) error {
	b := make([]byte, 2*len(codes))
	for i, c := range codes {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(ulawDecode(c)))
	}
	_, err := w.f.Write(b)
	w.n += uint32(len(b))
	return err
}

func (w *wavWriter) Close() error {
	_, err := w.f.WriteAt(wavHeader(w.n), 0)
	return errors.Join(err, w.f.Close())
}

// recordName is a file name for what dev sends, not yet taken in dir.
func recordName(dir string, dev Device, ext string) string {
	base := short(dev.User) + "-" + short(dev.Device)
	name := base + ext
	for i := 2; ; i++ {
		if _, err := os.Stat(dir + string(os.PathSeparator) + name); errors.Is(err, os.ErrNotExist) {
			return dir + string(os.PathSeparator) + name
		}
		name = fmt.Sprintf("%s-%d%s", base, i, ext)
	}
}

func short(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

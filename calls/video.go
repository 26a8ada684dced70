package calls

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// ErrVideo is a video file the peer cannot send.
var ErrVideo = errors.New("calls: unsupported video file")

var vp8Codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}

// Test pattern: 320×240 at 15 frames per second, 64 frames in a loop.
const (
	patternW, patternH = 320, 240
	patternFPS         = 15
	patternFrames      = 64
)

// openVideo reads a VP8 video in an IVF file; "" is the test pattern.
func openVideo(path string) (*source, error) {
	if path == "" {
		return patternSource(), nil
	}
	b, err := readSendFile(path, "video", ErrVideo)
	if err != nil {
		return nil, err
	}
	return ivfSource(b)
}

// patternSource is the test pattern (vp8.go): every frame a key frame, so
// that a peer that joins or loses a packet sees the next one whole.
func patternSource() *source {
	s := &source{codec: vp8Codec}
	for n := range patternFrames {
		s.samples = append(s.samples, media.Sample{Data: vp8KeyFrame(patternW, patternH, patternColour(n, patternW/16, patternH/16)), Duration: time.Second / patternFPS})
	}
	return s
}

// ivfSource cuts an IVF file of VP8 frames into samples, each as long as
// the time to the next frame's (the last as long as the one before it).
// The first frame must be a key frame, since the file plays in a loop.
func ivfSource(b []byte) (*source, error) {
	bad := func(why string) (*source, error) { return nil, fmt.Errorf("%w: %s", ErrVideo, why) }
	if len(b) < 32 || string(b[:4]) != "DKIF" {
		return bad("not an IVF file")
	}
	if string(b[8:12]) != "VP80" {
		return bad(fmt.Sprintf("codec %q: only VP8 (VP80) is sent", b[8:12]))
	}
	hdr := int(binary.LittleEndian.Uint16(b[6:8]))
	rate, scale := binary.LittleEndian.Uint32(b[16:20]), binary.LittleEndian.Uint32(b[20:24])
	if hdr < 32 || hdr > len(b) || rate == 0 || scale == 0 {
		return bad("malformed header")
	}
	type frame struct {
		data []byte
		pts  uint64
	}
	var frames []frame
	for p := hdr; p+12 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[p : p+4]))
		pts := binary.LittleEndian.Uint64(b[p+4 : p+12])
		p += 12
		if n < 0 || n > len(b)-p {
			break // a truncated last frame
		}
		if n > 0 {
			frames = append(frames, frame{b[p : p+n], pts})
		}
		p += n
	}
	if len(frames) == 0 {
		return bad("no frames")
	}
	if frames[0].data[0]&1 != 0 {
		return bad("the first frame is not a key frame")
	}
	s := &source{codec: vp8Codec}
	last := time.Second / 30
	for i, f := range frames {
		d := last
		if i+1 < len(frames) && frames[i+1].pts > f.pts {
			// pts are in units of scale/rate seconds.
			d = time.Duration(float64(frames[i+1].pts-f.pts) * float64(scale) / float64(rate) * float64(time.Second))
		}
		d = min(max(d, time.Millisecond), time.Second)
		last = d
		s.samples = append(s.samples, media.Sample{Data: f.data, Duration: d})
	}
	return s, nil
}

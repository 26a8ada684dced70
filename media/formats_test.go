package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// oggPageFlags is oggPageBytes with a header type (0x02: beginning of
// stream, 0x04: end of stream).
func oggPageFlags(flags byte, granule uint64, serial uint32, payload []byte) []byte {
	p := oggPageBytes(granule, serial, payload)
	p[5] = flags
	return p
}

// testOgg is a one-stream Ogg file: an identification header, a comment
// page, an audio page and a last page at granule.
func testOgg(head string, granule uint64) []byte {
	return cat(oggPageFlags(2, 0, 9, []byte(head)), oggPageFlags(0, 0, 9, []byte("comments")),
		oggPageFlags(0, granule/2, 9, []byte{1, 2, 3}), oggPageFlags(4, granule, 9, []byte{4}))
}

func vorbisHead(rate uint32) string {
	return string(cat([]byte("\x01vorbis"), be32(0), []byte{2}, binary.LittleEndian.AppendUint32(nil, rate), make([]byte, 14)))
}

func TestOggMore(t *testing.T) {
	opus := "OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00" // pre-skip 312
	cases := []struct {
		name string
		file []byte
		want Audio
	}{
		{"vorbis", testOgg(vorbisHead(44100), 44100*95), Audio{MIME: "audio/ogg; codecs=vorbis", DurationMs: 95000}},
		{"opus", testOgg(opus, 48000*3+312), Audio{MIME: "audio/ogg; codecs=opus", DurationMs: 3000}},
		{"opus shorter than its pre-skip", testOgg(opus, 100), Audio{MIME: "audio/ogg; codecs=opus"}},
		{"huge granule saturates", testOgg(opus, 1<<63), Audio{MIME: "audio/ogg; codecs=opus", DurationMs: 0xffffffff}},
		// A skeleton stream first, then the Opus one (two BOS pages).
		{"second stream", cat(oggPageFlags(2, 0, 1, []byte("fishead\x00")), oggPageFlags(2, 0, 2, []byte(opus)),
			oggPageFlags(0, 48000, 2, []byte{1}), oggPageFlags(4, 0, 1, nil)), Audio{MIME: "audio/ogg; codecs=opus", DurationMs: 993}},
		{"last page cut off", testOgg(vorbisHead(8000), 16000)[:150], Audio{MIME: "audio/ogg; codecs=vorbis", DurationMs: 1000}},
	}
	for _, c := range cases {
		a, err := AudioInfo(c.file)
		if err != nil || a.MIME != c.want.MIME || a.DurationMs != c.want.DurationMs || a.Waveform != nil {
			t.Errorf("%s: %+v %v, want %+v", c.name, a, err, c.want)
		}
	}
	// Ogg with a Theora stream is a video.
	theora := cat(oggPageFlags(2, 0, 1, []byte("\x80theora\x03\x02\x01")), oggPageFlags(2, 0, 2, []byte(vorbisHead(44100))),
		oggPageFlags(4, 44100, 2, []byte{1}))
	if _, err := AudioInfo(theora); !errors.Is(err, ErrNotAudio) {
		t.Errorf("theora: %v", err)
	}
	if Sniff(theora, "") != "video/ogg" {
		t.Error("sniff theora")
	}
	if _, err := AudioInfo(testOgg("\x01vorbis\x00", 10)); err == nil {
		t.Error("short vorbis header accepted")
	}
}

// webpFile wraps one chunk in a RIFF WEBP container.
func webpFile(chunks ...[]byte) []byte {
	body := cat(append([][]byte{[]byte("WEBP")}, chunks...)...)
	return cat([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body))), body)
}

func riffChunk(id string, data []byte) []byte {
	c := cat([]byte(id), binary.LittleEndian.AppendUint32(nil, uint32(len(data))), data)
	if len(data)%2 == 1 {
		c = append(c, 0)
	}
	return c
}

// The three WebP bitstreams: lossy (VP8), lossless (VP8L) and extended
// (VP8X, whose canvas size is read: animated files included).
func TestWebPInfo(t *testing.T) {
	vp8 := cat([]byte{0x50, 0x01, 0x00}, []byte{0x9d, 0x01, 0x2a}, binary.LittleEndian.AppendUint16(nil, 800),
		binary.LittleEndian.AppendUint16(nil, 600), make([]byte, 20))
	wh := uint32(1023) | uint32(767)<<14 // width-1, height-1
	vp8l := cat([]byte{0x2f}, binary.LittleEndian.AppendUint32(nil, wh), make([]byte, 8))
	vp8x := cat([]byte{0x12, 0, 0, 0}, []byte{0x7f, 0x07, 0x00}, []byte{0x37, 0x04, 0x00}) // 1920×1080, animated
	for _, c := range []struct {
		name string
		file []byte
		w, h int
	}{
		{"VP8", webpFile(riffChunk("VP8 ", vp8)), 800, 600},
		{"VP8L", webpFile(riffChunk("VP8L", vp8l)), 1024, 768},
		{"VP8X", webpFile(riffChunk("VP8X", vp8x), riffChunk("ANIM", make([]byte, 6))), 1920, 1080},
	} {
		info, err := ImageInfo(c.file)
		if err != nil || info != (Image{"image/webp", c.w, c.h}) {
			t.Errorf("%s: %+v %v", c.name, info, err)
		}
		if Sniff(c.file, "") != "image/webp" {
			t.Errorf("%s: sniff", c.name)
		}
	}
}

func TestSniffMore(t *testing.T) {
	for _, c := range []struct {
		head []byte
		want string
	}{
		{ftyp("M4B "), "audio/mp4"},
		{ftyp("3gp5", "3gp5", "isom"), "video/3gpp"},
		{ftyp("3g2a"), "video/3gpp2"},
		{ftyp("heic", "mif1"), "image/heic"},
		{ftyp("mif1", "mif1", "avif"), "image/avif"},
		{ftyp("mif1", "mif1", "heic"), "image/heif"},
		{ftyp("isom", "isom", "iso2", "mp41"), "video/mp4"},
		{box("moov", mvhd(0, 600, 600)), "video/quicktime"},
		{cat(ebmlHead("matroska"), el(mkvSegmentID)), "video/x-matroska"},
		{cat(ebmlHead("webm"), el(mkvSegmentID)), "video/webm"},
		{[]byte{0xff, 0xf1, 0x50, 0x80, 0x2e, 0x7f, 0xfc}, "audio/aac"},
		{[]byte{0xff, 0xfb, 0x90, 0x64}, "audio/mpeg"},
		{[]byte{0xff, 0xfb, 0xf0, 0x64}, "application/octet-stream"}, // bitrate index 15
		{[]byte{0xff, 0xeb, 0x90, 0x64}, "application/octet-stream"}, // reserved version
	} {
		if got := Sniff(c.head, ""); got != c.want {
			t.Errorf("Sniff(% x) = %q, want %q", c.head[:min(len(c.head), 16)], got, c.want)
		}
	}
	// Only the first 512 octets are looked at.
	if got := Sniff(cat(make([]byte, 600), []byte("OggS")), ""); got != "application/octet-stream" {
		t.Errorf("Sniff looked past 512 octets: %s", got)
	}
}

func sameAudio(a, b Audio) bool {
	return a.MIME == b.MIME && a.DurationMs == b.DurationMs && bytes.Equal(a.Waveform, b.Waveform)
}

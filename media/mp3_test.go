package media

import (
	"bytes"
	"errors"
	"testing"
)

// mp3Frame writes one MPEG audio frame: the header given and a body
// filling the frame's length (with an optional tag at offset at).
func mp3Frame(t testing.TB, header []byte, at int, tag []byte) []byte {
	f, ok := mpegHeader(header)
	if !ok {
		t.Fatalf("bad test header % x", header)
	}
	b := make([]byte, f.length)
	copy(b, header)
	copy(b[at:], tag)
	for i := max(4, at+len(tag)); i < len(b); i++ {
		b[i] = byte(i * 7) // not a frame header
	}
	return b
}

var (
	mpeg1L3_128 = []byte{0xff, 0xfb, 0x90, 0x00} // 44.1 kHz stereo, 417 octets, 1152 samples
	mpeg1L3_64  = []byte{0xff, 0xfb, 0x50, 0x00} // 44.1 kHz stereo, 208 octets
	mpeg1L3_pad = []byte{0xff, 0xfb, 0x92, 0x00} // 128 kbit/s padded: 418 octets
	mpeg2L3Mono = []byte{0xff, 0xf3, 0x84, 0xc0} // 24 kHz mono 64 kbit/s: 192 octets, 576 samples
	mpeg1L2     = []byte{0xff, 0xfd, 0x84, 0x00} // layer II 48 kHz 128 kbit/s: 384 octets, 1152 samples
)

func frames(t testing.TB, header []byte, n int) []byte {
	f := mp3Frame(t, header, 0, nil)
	return bytes.Repeat(f, n)
}

func id3v2(n int) []byte {
	return cat([]byte("ID3\x04\x00\x00"), []byte{0, 0, byte(n >> 7), byte(n & 0x7f)}, make([]byte, n))
}

func id3v1() []byte {
	b := make([]byte, 128)
	copy(b, "TAG\xff\xfb\x90\x00") // a title that looks like a frame header
	return b
}

func TestMP3(t *testing.T) {
	xing := cat([]byte("Xing"), be32(0x0f), be32(1000), be32(1000*417), make([]byte, 100))
	info := cat([]byte("Info"), be32(0x0e), be32(0), make([]byte, 100)) // no frame count
	vbri := cat([]byte("VBRI"), be16(1), be16(0), be16(75), be32(500*417), be32(500))
	junk := bytes.Repeat([]byte{0xff, 0xfb, 0x00}, 13) // false syncs
	cases := []struct {
		name string
		file []byte
		ms   uint32
	}{
		{"CBR with ID3 tags", cat(id3v2(300), frames(t, mpeg1L3_128, 100), id3v1()), 2612},
		{"CBR, no tags", frames(t, mpeg1L3_128, 383), 10004},
		{"padded frames", frames(t, mpeg1L3_pad, 50), 1306},
		{"Xing VBR header", cat(id3v2(20), mp3Frame(t, mpeg1L3_128, 36, xing), frames(t, mpeg1L3_64, 3)), 26122},
		{"Info header without count", cat(mp3Frame(t, mpeg1L3_128, 36, info), frames(t, mpeg1L3_128, 100)), 2612},
		{"VBRI header", cat(mp3Frame(t, mpeg1L3_128, 36, vbri), frames(t, mpeg1L3_128, 2)), 13061},
		{"VBR without header: frames counted", cat(frames(t, mpeg1L3_64, 50), frames(t, mpeg1L3_128, 50)), 2612},
		{"damaged stretch skipped", cat(frames(t, mpeg1L3_128, 50), junk, frames(t, mpeg1L3_64, 50)), 2612},
		{"truncated last frame", cat(frames(t, mpeg1L3_128, 100), mpeg1L3_128, make([]byte, 100)), 2612},
		{"MPEG-2 mono voice", frames(t, mpeg2L3Mono, 250), 6000},
		{"MPEG-2 Xing (mono side info)", mp3Frame(t, mpeg2L3Mono, 4+9, cat([]byte("Xing"), be32(1), be32(100))), 2400},
		{"layer II", frames(t, mpeg1L2, 125), 3000},
		{"padding after the ID3 tag", cat(id3v2(10), make([]byte, 1000), frames(t, mpeg1L3_128, 100)), 2612},
	}
	for _, c := range cases {
		a, err := AudioInfo(c.file)
		if err != nil || !sameAudio(a, Audio{MIME: "audio/mpeg", DurationMs: c.ms}) {
			t.Errorf("%s: %+v %v, want %d ms", c.name, a, err, c.ms)
		}
		if got := Sniff(c.file, ""); got != "audio/mpeg" {
			t.Errorf("%s: Sniff = %s", c.name, got)
		}
	}
	for name, f := range map[string][]byte{
		"one header then junk":  cat(mpeg1L3_128, make([]byte, 1000)),
		"two streams":           cat(mp3Frame(t, mpeg1L3_128, 0, nil), mp3Frame(t, mpeg2L3Mono, 0, nil), make([]byte, 10)),
		"ID3 tag only":          id3v2(100),
		"ID3 tag then text":     cat(id3v2(10), bytes.Repeat([]byte("text "), 100)),
		"misaligned":            frames(t, mpeg1L3_128, 3)[1:],
		"free-format bitrate":   bytes.Repeat(cat([]byte{0xff, 0xfb, 0x00, 0x00}, make([]byte, 400)), 3),
		"sync not at the start": cat([]byte{0}, frames(t, mpeg1L3_128, 3)),
	} {
		if a, err := AudioInfo(f); !errors.Is(err, ErrNotAudio) {
			t.Errorf("%s: accepted as %+v", name, a)
		}
	}
}

func FuzzAudioInfo(f *testing.F) {
	f.Add(makeWAV(8000, 1, 16, 0.05))
	f.Add(cat(id3v2(30), frames(f, mpeg1L3_128, 3), id3v1()))
	f.Add(mp3Frame(f, mpeg2L3Mono, 4+9, cat([]byte("Xing"), be32(1), be32(100))))
	f.Add(mp3Frame(f, mpeg1L3_128, 36, cat([]byte("VBRI"), make([]byte, 10), be32(9))))
	f.Add(cat(adtsFrame(100), adtsFrame(120), adtsFrame(7)))
	f.Add(testOgg("OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00", 48000*3))
	f.Add(cat(ftyp("M4A "), box("moov", mvhd(0, 1000, 5), trak(tkhd(0, 0, 0, false), "soun"))))
	f.Add(cat(ebmlHead("webm"), el(mkvSegmentID, el(mkvInfoID, elFloat(mkvDurationID, 5)), el(mkvTracksID, audioTrack()))))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := AudioInfo(b)
		if err == nil && (a.MIME == "" || (a.Waveform != nil && len(a.Waveform) != WaveformBuckets)) {
			t.Errorf("%+v", a)
		}
		_ = Sniff(b, "")
	})
}

// adtsFrame writes an AAC-LC ADTS frame of n octets (44.1 kHz stereo, no
// CRC, one raw data block: 1024 samples).
func adtsFrame(n int) []byte {
	b := make([]byte, n)
	copy(b, []byte{0xff, 0xf1, 0x50, 0x80 | byte(n>>11), byte(n >> 3), byte(n&7)<<5 | 0x1f, 0xfc})
	return b
}

func TestADTS(t *testing.T) {
	var f []byte
	for i := range 100 {
		f = append(f, adtsFrame(180+i%40)...) // variable frame sizes
	}
	for name, file := range map[string][]byte{
		"plain":               f,
		"ID3 tag":             cat(id3v2(50), f),
		"junk between frames": cat(f[:1845], []byte{0xff, 0xf1, 0, 0, 0xff}, f[1845:]), // after 10 frames
		"cut last one":        f[:len(f)-10],
	} {
		a, err := AudioInfo(file)
		want := uint32(2321) // 100 × 1024 / 44100
		if name == "cut last one" {
			want = 2298 // 99 frames
		}
		if err != nil || !sameAudio(a, Audio{MIME: "audio/aac", DurationMs: want}) {
			t.Errorf("%s: %+v %v, want %d ms", name, a, err, want)
		}
	}
	if Sniff(f, "") != "audio/aac" {
		t.Error("sniff adts")
	}
	if _, err := AudioInfo(cat(adtsFrame(200)[:7], make([]byte, 400))); err == nil {
		t.Error("one ADTS header and zeros accepted")
	}
}

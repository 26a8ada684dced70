package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// Builders of minimal ISO BMFF files: only the boxes and fields the
// parser reads are meaningful, the rest is zero.

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// box writes a box with a 32-bit size.
func box(typ string, parts ...[]byte) []byte {
	body := cat(parts...)
	return cat(be32(uint32(8+len(body))), []byte(typ), body)
}

// box64 writes a box with size 1 and a 64-bit size.
func box64(typ string, parts ...[]byte) []byte {
	body := cat(parts...)
	return cat(be32(1), []byte(typ), be64(uint64(16+len(body))), body)
}

func ftyp(brand string, compat ...string) []byte {
	b := cat([]byte(brand), be32(0))
	for _, c := range compat {
		b = append(b, c...)
	}
	return box("ftyp", b)
}

// mvhd and mdhd share their leading fields.
func mediaHeaderBox(typ string, version byte, timescale uint32, duration uint64, tail int) []byte {
	if version == 1 {
		return box(typ, []byte{1, 0, 0, 0}, be64(0), be64(0), be32(timescale), be64(duration), make([]byte, tail))
	}
	return box(typ, []byte{0, 0, 0, 0}, be32(0), be32(0), be32(timescale), be32(uint32(duration)), make([]byte, tail))
}

func mvhd(version byte, timescale uint32, duration uint64) []byte {
	return mediaHeaderBox("mvhd", version, timescale, duration, 80)
}

func mdhd(version byte, timescale uint32, duration uint64) []byte {
	return mediaHeaderBox("mdhd", version, timescale, duration, 4)
}

// tkhd writes a track header of w×h pixels (16.16), its matrix turning
// by 90° when rotate.
func tkhd(version byte, w, h uint32, rotate bool) []byte {
	var times []byte
	if version == 1 {
		times = cat(be64(0), be64(0), be32(1), be32(0), be64(0))
	} else {
		times = cat(be32(0), be32(0), be32(1), be32(0), be32(0))
	}
	a, b, c, d := uint32(0x10000), uint32(0), uint32(0), uint32(0x10000)
	if rotate {
		a, b, c, d = 0, 0x10000, 0xffff0000, 0
	}
	matrix := cat(be32(a), be32(b), be32(0), be32(c), be32(d), be32(0), be32(0), be32(0), be32(0x40000000))
	return box("tkhd", []byte{version, 0, 0, 3}, times, make([]byte, 16), matrix, be32(w<<16), be32(h<<16))
}

func hdlr(handler string) []byte {
	return box("hdlr", be32(0), be32(0), []byte(handler), make([]byte, 12), []byte("x\x00"))
}

// stsd writes a sample description with one entry; a visual entry for
// "avc1", an audio one otherwise.
func stsd(entry string, w, h uint16) []byte {
	var e []byte
	if entry == "avc1" {
		e = box(entry, make([]byte, 6), be16(1), make([]byte, 16), be16(w), be16(h), make([]byte, 50))
	} else {
		e = box(entry, make([]byte, 6), be16(1), make([]byte, 20))
	}
	return box("stsd", be32(0), be32(1), e)
}

func trak(tk []byte, handler string, media ...[]byte) []byte {
	entry := stsd("mp4a", 0, 0)
	if handler == "vide" {
		entry = stsd("avc1", 0, 0)
	}
	if len(media) > 0 && bytes.Equal(media[len(media)-1][4:8], []byte("stsd")) {
		entry, media = media[len(media)-1], media[:len(media)-1]
	}
	return box("trak", tk, box("mdia", cat(media...), hdlr(handler),
		box("minf", box("stbl", entry, box("stts", be32(0), be32(0))))))
}

// mp4Video is a faststart MP4: ftyp, moov (a 1280×720 video track and a
// sound track, 12.345 s), mdat.
func mp4Video() []byte {
	return cat(ftyp("isom", "isom", "avc1", "mp41"),
		box("moov", mvhd(0, 1000, 12345),
			trak(tkhd(0, 1280, 720, false), "vide", mdhd(0, 90000, 12345*90)),
			trak(tkhd(0, 0, 0, false), "soun", mdhd(0, 48000, 12345*48))),
		box("mdat", make([]byte, 1000)))
}

func TestVideoInfoMP4(t *testing.T) {
	mdat := box("mdat", make([]byte, 3000))
	cases := []struct {
		name string
		file []byte
		want Video
	}{
		{"faststart", mp4Video(), Video{"video/mp4", 1280, 720, 12345}},
		{"version 1 boxes, 64-bit sizes", cat(ftyp("mp42"), box64("moov", mvhd(1, 90000, 61*90000),
			trak(tkhd(1, 3840, 2160, false), "vide", mdhd(1, 90000, 61*90000))), box64("mdat", make([]byte, 10))),
			Video{"video/mp4", 3840, 2160, 61000}},
		{"moov after mdat", cat(ftyp("isom"), mdat, box("moov", mvhd(0, 600, 600*7),
			trak(tkhd(0, 640, 480, false), "vide", mdhd(0, 600, 600*7)))), Video{"video/mp4", 640, 480, 7000}},
		{"mdat to the end (size 0)", cat(ftyp("isom"), box("moov", mvhd(0, 1000, 1500),
			trak(tkhd(0, 320, 240, false), "vide")), be32(0), []byte("mdat"), make([]byte, 100)), Video{"video/mp4", 320, 240, 1500}},
		{"portrait phone video", cat(ftyp("qt  "), box("moov", mvhd(0, 600, 600*3),
			trak(tkhd(0, 1920, 1080, true), "vide"))), Video{"video/quicktime", 1080, 1920, 3000}},
		{"no tkhd size: sample entry", cat(ftyp("isom"), box("moov", mvhd(0, 1000, 2000),
			trak(tkhd(0, 0, 0, false), "vide", stsd("avc1", 176, 144))), mdat), Video{"video/mp4", 176, 144, 2000}},
		{"fragmented: mehd", cat(ftyp("iso6"), box("moov", mvhd(0, 1000, 0),
			box("mvex", box("mehd", be32(0), be32(4200))), trak(tkhd(0, 854, 480, false), "vide", mdhd(0, 1000, 0)))),
			Video{"video/mp4", 854, 480, 4200}},
		{"unknown mvhd duration: track's", cat(ftyp("isom"), box("moov", mvhd(0, 1000, 0xffffffff),
			trak(tkhd(0, 100, 50, false), "vide", mdhd(0, 25, 250)))), Video{"video/mp4", 100, 50, 10000}},
		{"3GPP", cat(ftyp("3gp4"), box("moov", mvhd(0, 1000, 900), trak(tkhd(0, 176, 144, false), "vide"))),
			Video{"video/3gpp", 176, 144, 900}},
		{"QuickTime without ftyp", cat(box("wide"), box("moov", mvhd(0, 600, 300), trak(tkhd(0, 720, 576, false), "vide")), mdat),
			Video{"video/quicktime", 720, 576, 500}},
		{"no moov: type only", cat(ftyp("isom"), mdat), Video{MIME: "video/mp4"}},
	}
	for _, c := range cases {
		v, err := VideoInfo(c.file, int64(len(c.file)))
		if err != nil || v != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.name, v, err, c.want)
		}
		if v, err := VideoInfoAt(bytes.NewReader(c.file), int64(len(c.file))); err != nil || v != c.want {
			t.Errorf("%s (ReaderAt): %+v %v", c.name, v, err)
		}
		if got := Sniff(c.file, ""); got != c.want.MIME {
			t.Errorf("%s: Sniff = %s", c.name, got)
		}
		if _, err := AudioInfo(c.file); err == nil {
			t.Errorf("%s: AudioInfo accepted a video", c.name)
		}
	}
}

// A moov behind the media data is outside a head: the type is known, the
// rest is zero, never guessed.
func TestVideoInfoHeadOnly(t *testing.T) {
	f := cat(ftyp("isom"), box("mdat", make([]byte, 5000)), box("moov", mvhd(0, 1000, 9000),
		trak(tkhd(0, 640, 360, false), "vide")))
	v, err := VideoInfo(f[:512], int64(len(f)))
	if err != nil || v != (Video{MIME: "video/mp4"}) {
		t.Errorf("head: %+v %v", v, err)
	}
	// A truncated moov: what is there.
	f = mp4Video()
	if v, err := VideoInfo(f[:60], int64(len(f))); err != nil || v.MIME != "video/mp4" || v.Width != 0 {
		t.Errorf("truncated moov: %+v %v", v, err)
	}
}

func TestM4A(t *testing.T) {
	m4a := cat(ftyp("M4A ", "M4A ", "mp42", "isom"), box("moov", mvhd(0, 44100, 44100*185+22050),
		trak(tkhd(0, 0, 0, false), "soun", mdhd(0, 44100, 44100*185+22050))), box("mdat", make([]byte, 100)))
	a, err := AudioInfo(m4a)
	if err != nil || !sameAudio(a, Audio{MIME: "audio/mp4", DurationMs: 185500}) {
		t.Errorf("m4a: %+v %v", a, err)
	}
	if Sniff(m4a, "") != "audio/mp4" {
		t.Error("sniff m4a")
	}
	if _, err := VideoInfo(m4a, int64(len(m4a))); !errors.Is(err, ErrNotVideo) {
		t.Errorf("VideoInfo(m4a) = %v", err)
	}
	// An audio-only MP4 with a video brand, mdhd only (no mvhd), version 1.
	mp4 := cat(ftyp("isom"), box("moov", trak(tkhd(1, 0, 0, false), "soun", mdhd(1, 48000, 48000*3))))
	if a, err := AudioInfo(mp4); err != nil || !sameAudio(a, Audio{MIME: "audio/mp4", DurationMs: 3000}) {
		t.Errorf("audio-only mp4: %+v %v", a, err)
	}
	if _, err := VideoInfo(mp4, int64(len(mp4))); !errors.Is(err, ErrNotVideo) {
		t.Errorf("VideoInfo(audio-only mp4) = %v", err)
	}
	// An AMR voice note in 3GPP.
	amr := cat(ftyp("3gp4"), box("moov", mvhd(0, 1000, 4321), trak(tkhd(0, 0, 0, false), "soun", stsd("samr", 0, 0))))
	if a, err := AudioInfo(amr); err != nil || !sameAudio(a, Audio{MIME: "audio/3gpp", DurationMs: 4321}) {
		t.Errorf("3gpp audio: %+v %v", a, err)
	}
	// An M4A whose moov is cut off is not read as audio.
	if _, err := AudioInfo(m4a[:40]); err == nil {
		t.Error("AudioInfo read a truncated M4A")
	}
	// Images in HEIF containers are not videos.
	for _, brand := range []string{"heic", "avif"} {
		img := cat(ftyp(brand, "mif1"), box("meta", be32(0)))
		if _, err := VideoInfo(img, int64(len(img))); !errors.Is(err, ErrNotVideo) {
			t.Errorf("VideoInfo(%s) = %v", brand, err)
		}
	}
}

// countingReader records what a parser asks of a file.
type countingReader struct {
	r            *bytes.Reader
	reads, bytes int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	c.bytes += len(p)
	return c.r.ReadAt(p, off)
}

// Hostile length fields cost a bounded number of small reads and never
// loop: a huge claimed size, zero sizes, a size smaller than the header,
// thousands of empty boxes, deep nesting.
func TestMP4Bounded(t *testing.T) {
	many := bytes.Repeat(box("free"), 100_000)
	cases := map[string][]byte{
		"huge 64-bit size": cat(ftyp("isom"), be32(1), []byte("moov"), be64(1<<63-1), mvhd(0, 1000, 5)),
		"zero-size boxes":  cat(ftyp("isom"), box("moov", be32(0), []byte("trak"), be32(0), []byte("mdia"), be32(0), []byte("hdlr"))),
		"size 7":           cat(ftyp("isom"), be32(7), []byte("moov"), make([]byte, 100)),
		"100000 boxes":     cat(ftyp("isom"), many, box("moov", mvhd(0, 1, 1))),
		"100000 in moov":   cat(ftyp("isom"), box("moov", many)),
		"huge stsd entry":  cat(ftyp("isom"), box("moov", trak(tkhd(0, 0, 0, false), "vide", box("stsd", be32(0), be32(0xffffffff), be32(0xfffffff0), []byte("avc1"))))),
	}
	for name, f := range cases {
		c := &countingReader{r: bytes.NewReader(f)}
		_, _ = VideoInfoAt(c, 1<<62)
		if c.reads > maxReads+1 || c.bytes > (maxReads+1)*maxReadLen {
			t.Errorf("%s: %d reads, %d octets", name, c.reads, c.bytes)
		}
		_, _ = VideoInfo(f, int64(len(f)))
		_, _ = AudioInfo(f)
	}
}

func FuzzVideoInfo(f *testing.F) {
	f.Add(mp4Video())
	f.Add(cat(ftyp("mp42"), box64("moov", mvhd(1, 90000, 61*90000), trak(tkhd(1, 3840, 2160, true), "vide"))))
	f.Add(webmVideo())
	f.Add(webmSeekHead())
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := VideoInfo(b, int64(len(b)))
		if err == nil && (v.MIME == "" || v.Width < 0 || v.Height < 0) {
			t.Errorf("%+v", v)
		}
		// Sizes larger than the data: reads past it fail quietly.
		_, _ = VideoInfo(b, int64(len(b))*3+100)
		_, _ = VideoInfo(b, -1)
	})
}

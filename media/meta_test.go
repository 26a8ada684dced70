package media

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"testing"
)

func testImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	return img
}

func TestImageInfoAndThumbnail(t *testing.T) {
	img := testImage(640, 480)
	var pngB, jpgB, gifB bytes.Buffer
	_ = png.Encode(&pngB, img)
	_ = jpeg.Encode(&jpgB, img, nil)
	_ = gif.Encode(&gifB, img, nil)
	for _, c := range []struct {
		data []byte
		mime string
	}{{pngB.Bytes(), "image/png"}, {jpgB.Bytes(), "image/jpeg"}, {gifB.Bytes(), "image/gif"}} {
		info, err := ImageInfo(c.data)
		if err != nil || info != (Image{c.mime, 640, 480}) {
			t.Errorf("%s: %+v %v", c.mime, info, err)
		}
		if got := Sniff(c.data, "x.bin"); got != c.mime {
			t.Errorf("Sniff = %s, want %s", got, c.mime)
		}
		th, w, h, err := Thumbnail(c.data, ThumbnailMax)
		if err != nil || w != 320 || h != 240 {
			t.Fatalf("%s thumbnail: %dx%d %v", c.mime, w, h, err)
		}
		dec, err := jpeg.Decode(bytes.NewReader(th))
		if err != nil || dec.Bounds().Dx() != 320 || dec.Bounds().Dy() != 240 {
			t.Fatalf("%s thumbnail is not a 320x240 JPEG: %v", c.mime, err)
		}
		// The gradient survives: left is darker in red than right.
		r0, _, _, _ := dec.At(5, 120).RGBA()
		r1, _, _, _ := dec.At(314, 120).RGBA()
		if r0 >= r1 {
			t.Errorf("%s thumbnail lost the gradient", c.mime)
		}
	}
	// Portrait, small (no upscaling) and transparent images.
	var b bytes.Buffer
	_ = png.Encode(&b, testImage(100, 1000))
	if _, w, h, err := Thumbnail(b.Bytes(), 320); err != nil || w != 32 || h != 320 {
		t.Errorf("portrait: %dx%d %v", w, h, err)
	}
	b.Reset()
	_ = png.Encode(&b, testImage(50, 40))
	if _, w, h, err := Thumbnail(b.Bytes(), 320); err != nil || w != 50 || h != 40 {
		t.Errorf("small: %dx%d %v", w, h, err)
	}
	b.Reset()
	_ = png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 10, 10))) // fully transparent
	th, _, _, err := Thumbnail(b.Bytes(), 320)
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := jpeg.Decode(bytes.NewReader(th))
	if r, g, bl, _ := dec.At(5, 5).RGBA(); r < 0xf000 || g < 0xf000 || bl < 0xf000 {
		t.Errorf("transparency not flattened onto white: %x %x %x", r, g, bl)
	}
	if _, err := ImageInfo([]byte("not an image")); err == nil {
		t.Error("ImageInfo accepted text")
	}
}

// A header announcing a huge image is refused before decoding.
func TestThumbnailBomb(t *testing.T) {
	var b bytes.Buffer
	_ = png.Encode(&b, testImage(1, 1))
	p := b.Bytes()
	binary.BigEndian.PutUint32(p[16:], 100000) // IHDR width
	binary.BigEndian.PutUint32(p[20:], 100000) // IHDR height
	if _, _, _, err := Thumbnail(p, 320); err == nil {
		t.Error("100000x100000 image accepted")
	}
}

// makeWAV writes a PCM WAV of a sine whose loudness ramps up.
func makeWAV(rate, channels, bits int, seconds float64) []byte {
	frames := int(float64(rate) * seconds)
	width := bits / 8
	var pcm bytes.Buffer
	for f := range frames {
		amp := float64(f) / float64(frames)
		v := amp * math.Sin(2*math.Pi*440*float64(f)/float64(rate))
		for range channels {
			switch bits {
			case 8:
				pcm.WriteByte(uint8(128 + v*127))
			case 16:
				_ = binary.Write(&pcm, binary.LittleEndian, int16(v*32767))
			case 24:
				s := int32(v * (1<<23 - 1))
				pcm.Write([]byte{byte(s), byte(s >> 8), byte(s >> 16)})
			}
		}
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+pcm.Len()))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(channels), uint32(rate),
		uint32(rate * channels * width), uint16(channels * width), uint16(bits)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("LIST") // an unrelated chunk, odd-sized (padded)
	_ = binary.Write(&b, binary.LittleEndian, uint32(3))
	b.Write([]byte{1, 2, 3, 0})
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(pcm.Len()))
	b.Write(pcm.Bytes())
	return b.Bytes()
}

func TestWAV(t *testing.T) {
	for _, c := range []struct{ rate, ch, bits int }{{16000, 1, 16}, {44100, 2, 16}, {8000, 1, 8}, {48000, 2, 24}} {
		w := makeWAV(c.rate, c.ch, c.bits, 2.0)
		a, err := AudioInfo(w)
		if err != nil {
			t.Fatal(err)
		}
		if a.MIME != "audio/wav" || a.DurationMs != 2000 {
			t.Errorf("%+v: %s %d ms", c, a.MIME, a.DurationMs)
		}
		if len(a.Waveform) != WaveformBuckets || a.Waveform[WaveformBuckets-1] < 240 || a.Waveform[0] > 20 ||
			a.Waveform[10] >= a.Waveform[50] {
			t.Errorf("%+v: waveform does not ramp: %v", c, a.Waveform)
		}
		if Sniff(w, "") != "audio/wav" {
			t.Errorf("sniff WAV")
		}
	}
	// Truncated data chunk: duration of what is there.
	w := makeWAV(16000, 1, 16, 2.0)
	if a, err := AudioInfo(w[:len(w)-16000]); err != nil || a.DurationMs != 1500 {
		t.Errorf("truncated: %d ms, %v", a.DurationMs, err)
	}
	if _, err := AudioInfo([]byte("RIFF\x00\x00\x00\x00WAVE")); err == nil {
		t.Error("WAV without chunks accepted")
	}
}

func oggPageBytes(granule uint64, serial uint32, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("OggS")
	b.Write([]byte{0, 0})
	_ = binary.Write(&b, binary.LittleEndian, granule)
	_ = binary.Write(&b, binary.LittleEndian, serial)
	b.Write(make([]byte, 8)) // sequence, CRC (not checked)
	b.WriteByte(1)
	b.WriteByte(byte(len(payload)))
	b.Write(payload)
	return b.Bytes()
}

func TestOggOpus(t *testing.T) {
	head := append([]byte("OpusHead\x01\x01"), 0x38, 0x01) // pre-skip 312
	head = append(head, make([]byte, 7)...)
	var f []byte
	f = append(f, oggPageBytes(0, 7, head)...)
	f = append(f, oggPageBytes(0, 7, []byte("OpusTags"))...)
	f = append(f, oggPageBytes(48000, 7, []byte{1, 2, 3})...)
	f = append(f, oggPageBytes(2*48000+312, 7, []byte{4, 5})...)
	a, err := AudioInfo(f)
	if err != nil || a.DurationMs != 2000 || a.MIME != "audio/ogg; codecs=opus" || a.Waveform != nil {
		t.Fatalf("opus: %+v %v", a, err)
	}
	if Sniff(f, "") != "audio/ogg; codecs=opus" {
		t.Error("sniff opus")
	}
}

func TestSniff(t *testing.T) {
	for _, c := range []struct {
		head []byte
		name string
		want string
	}{
		{[]byte("%PDF-1.7"), "", "application/pdf"},
		{[]byte("\x00\x00\x00\x20ftypisom"), "", "video/mp4"},
		{[]byte("\x00\x00\x00\x20ftypM4A "), "", "audio/mp4"},
		{[]byte("\x00\x00\x00\x14ftypqt  "), "", "video/quicktime"},
		{[]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), "", "image/webp"},
		{[]byte("\x1a\x45\xdf\xa3"), "", "video/webm"},
		{[]byte("ID3\x04"), "", "audio/mpeg"},
		{[]byte("hello, wörld"), "", "text/plain; charset=utf-8"},
		{[]byte("# Title"), "notes.md", "text/markdown; charset=utf-8"},
		{[]byte{0, 1, 2, 3}, "", "application/octet-stream"},
		{[]byte{0, 1, 2, 3}, "a.MP3", "audio/mpeg"},
		{nil, "", "application/octet-stream"},
	} {
		if got := Sniff(c.head, c.name); got != c.want {
			t.Errorf("Sniff(%q, %q) = %q, want %q", c.head, c.name, got, c.want)
		}
	}
}

func FuzzMeta(f *testing.F) {
	f.Add(makeWAV(8000, 1, 16, 0.1))
	f.Add([]byte("OggS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = AudioInfo(b)
		_, _ = ImageInfo(b)
		_ = Sniff(b, "x")
	})
}

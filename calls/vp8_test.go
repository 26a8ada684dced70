package calls

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/image/vp8"
)

// TestVP8Pattern: every frame of the test pattern decodes (with x/image's
// VP8 decoder) to exactly the colours it was made of.
func TestVP8Pattern(t *testing.T) {
	const w, h = 320, 240
	for _, n := range []int{0, 1, 7, 33, 63} {
		colour := patternColour(n, w/16, h/16)
		frame := vp8KeyFrame(w, h, colour)
		d := vp8.NewDecoder()
		d.Init(bytes.NewReader(frame), len(frame))
		fh, err := d.DecodeFrameHeader()
		if err != nil || !fh.KeyFrame || fh.Width != w || fh.Height != h {
			t.Fatalf("frame %d: header %+v, %v", n, fh, err)
		}
		img, err := d.DecodeFrame()
		if err != nil {
			t.Fatalf("frame %d (%d bytes): %v", n, len(frame), err)
		}
		for my := range h / 16 {
			for mx := range w / 16 {
				want := colour(mx, my)
				for _, p := range [][2]int{{0, 0}, {15, 15}, {7, 9}} {
					x, y := mx*16+p[0], my*16+p[1]
					yy := img.Y[y*img.YStride+x]
					cb, cr := img.Cb[(y/2)*img.CStride+x/2], img.Cr[(y/2)*img.CStride+x/2]
					if yy != want.y || cb != want.u || cr != want.v {
						t.Fatalf("frame %d, pixel (%d,%d): YCbCr %d %d %d, want %+v", n, x, y, yy, cb, cr, want)
					}
				}
			}
		}
		if n == 0 {
			t.Logf("a %dx%d frame: %d bytes", w, h, len(frame))
		}
	}
}

// writeIVF writes frames as an IVF file of VP8 at fps.
func writeIVF(t testing.TB, path string, frames [][]byte, fps int) {
	t.Helper()
	var b bytes.Buffer
	h := make([]byte, 32)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[6:], 32)
	copy(h[8:], "VP80")
	binary.LittleEndian.PutUint16(h[12:], patternW)
	binary.LittleEndian.PutUint16(h[14:], patternH)
	binary.LittleEndian.PutUint32(h[16:], uint32(fps))
	binary.LittleEndian.PutUint32(h[20:], 1)
	binary.LittleEndian.PutUint32(h[24:], uint32(len(frames)))
	b.Write(h)
	for i, f := range frames {
		fh := make([]byte, 12)
		binary.LittleEndian.PutUint32(fh, uint32(len(f)))
		binary.LittleEndian.PutUint64(fh[4:], uint64(i))
		b.Write(fh)
		b.Write(f)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// decodedColour decodes a VP8 key frame and returns its colour at the
// centre of macroblock (mx, my).
func decodedColour(t testing.TB, frame []byte, mx, my int) yuv {
	t.Helper()
	d := vp8.NewDecoder()
	d.Init(bytes.NewReader(frame), len(frame))
	if _, err := d.DecodeFrameHeader(); err != nil {
		t.Fatal(err)
	}
	img, err := d.DecodeFrame()
	if err != nil {
		t.Fatal(err)
	}
	x, y := mx*16+8, my*16+8
	return yuv{img.Y[y*img.YStride+x], img.Cb[(y/2)*img.CStride+x/2], img.Cr[(y/2)*img.CStride+x/2]}
}

// TestVideoPeers: in a video call, one peer sends an IVF file and the
// other the test pattern; each records the other's VP8, whose key frames
// decode to the colours sent.
func TestVideoPeers(t *testing.T) {
	dir := t.TempDir()
	// A clip of plain frames (every macroblock one colour), 10 frames.
	var clip [][]byte
	for range 10 {
		clip = append(clip, vp8KeyFrame(patternW, patternH, func(int, int) yuv { return yuv{90, 60, 200} }))
	}
	ivf := filepath.Join(dir, "clip.ivf")
	writeIVF(t, ivf, clip, 15)
	b := newBoard()
	a := b.add(t, "a", Config{Video: true, SendVideo: ivf, Record: t.TempDir()})
	c := b.add(t, "b", Config{Video: true, Record: t.TempDir()})
	c.call.Join([]Device{a.dev})
	meshFlows(t, a, c)
	waitFor(t, "video recorded both ways", func() (bool, string) {
		for _, m := range []*member{a, c} {
			if st := m.call.Stats(context.Background()); len(st) != 1 || st[0].BytesIn < 40_000 {
				return false, fmt.Sprintf("%+v", st)
			}
		}
		return true, ""
	})
	for _, x := range []struct {
		m    *member
		want yuv
	}{{a, barColours[0]}, {c, yuv{90, 60, 200}}} {
		x.m.stop()
		files, _ := filepath.Glob(filepath.Join(x.m.dir, "*.ivf"))
		if len(files) != 1 {
			t.Fatalf("%s recorded %v", x.m.dev.Device, files)
		}
		raw, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		src, err := ivfSource(raw)
		if err != nil {
			t.Fatalf("%s: %v", files[0], err)
		}
		t.Logf("%s: %d frames", files[0], len(src.samples))
		if len(src.samples) < 5 {
			t.Fatalf("%s: %d frames", files[0], len(src.samples))
		}
		if got := decodedColour(t, src.samples[len(src.samples)/2].Data, 0, 0); got != x.want {
			t.Fatalf("%s: colour %+v, want %+v", files[0], got, x.want)
		}
	}
}

// FuzzVideoFile: any bytes are refused with ErrVideo or cut into VP8
// samples of sane durations.
func FuzzVideoFile(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "a.ivf")
	writeIVF(f, p, [][]byte{vp8KeyFrame(16, 16, func(int, int) yuv { return yuv{1, 2, 3} }), {1, 2, 3}}, 30)
	b, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:40])
	f.Add([]byte("DKIF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ivfSource(b)
		if err != nil {
			if !errors.Is(err, ErrVideo) {
				t.Fatalf("error %v is not ErrVideo", err)
			}
			return
		}
		if len(s.samples) == 0 {
			t.Fatal("no samples and no error")
		}
		for _, x := range s.samples {
			if len(x.Data) == 0 || x.Duration < time.Millisecond || x.Duration > time.Second {
				t.Fatalf("sample of %d bytes, %v", len(x.Data), x.Duration)
			}
		}
	})
}

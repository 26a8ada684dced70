package media

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // registers GIF
	"image/jpeg"
	_ "image/png" // registers PNG

	_ "golang.org/x/image/webp" // registers WebP
)

// Image is what a message says about an image.
type Image struct {
	MIME   string
	Width  int
	Height int
}

// Limits of image handling.
const (
	ThumbnailMax = 320        // longest side of a thumbnail, in pixels
	MaxPixels    = 64_000_000 // larger images get dimensions but no thumbnail
)

// ErrNotImage is returned for data no registered decoder reads.
var ErrNotImage = errors.New("media: not a PNG, JPEG, GIF or WebP image")

// ImageInfo returns the type and dimensions of a PNG, JPEG, GIF or WebP
// image, reading only its header.
func ImageInfo(data []byte) (Image, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return Image{}, fmt.Errorf("%w: %v", ErrNotImage, err)
	}
	return Image{MIME: "image/" + format, Width: cfg.Width, Height: cfg.Height}, nil
}

// Thumbnail decodes an image and returns a JPEG of it scaled (by box
// averaging, never up) so that its longest side is at most max pixels,
// with its dimensions. Transparency is flattened onto white. It refuses
// images of more than MaxPixels before decoding them.
func Thumbnail(data []byte, max int) (jpegData []byte, width, height int, err error) {
	info, err := ImageInfo(data)
	if err != nil {
		return nil, 0, 0, err
	}
	if info.Width <= 0 || info.Height <= 0 || int64(info.Width)*int64(info.Height) > MaxPixels {
		return nil, 0, 0, fmt.Errorf("media: image of %dx%d pixels is too large for a thumbnail", info.Width, info.Height)
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: %v", ErrNotImage, err)
	}
	dst := scale(src, max)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 80}); err != nil {
		return nil, 0, 0, err
	}
	b := dst.Bounds()
	return buf.Bytes(), b.Dx(), b.Dy(), nil
}

// scale box-averages src into an RGBA image whose longest side is at most
// max, flattening alpha onto white.
func scale(src image.Image, max int) *image.RGBA {
	sb := src.Bounds()
	sw, sh := sb.Dx(), sb.Dy()
	dw, dh := sw, sh
	if sw > max || sh > max {
		if sw >= sh {
			dw, dh = max, (sh*max+sw/2)/sw
		} else {
			dw, dh = (sw*max+sh/2)/sh, max
		}
	}
	dw, dh = maxInt(dw, 1), maxInt(dh, 1)
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := 0; y < dh; y++ {
		y0, y1 := sb.Min.Y+y*sh/dh, sb.Min.Y+maxInt((y+1)*sh/dh, y*sh/dh+1)
		for x := 0; x < dw; x++ {
			x0, x1 := sb.Min.X+x*sw/dw, sb.Min.X+maxInt((x+1)*sw/dw, x*sw/dw+1)
			var r, g, b, n uint64
			for sy := y0; sy < y1; sy++ {
				for sx := x0; sx < x1; sx++ {
					cr, cg, cb, ca := src.At(sx, sy).RGBA()
					// premultiplied: composite over white
					r += uint64(cr + 0xffff - ca)
					g += uint64(cg + 0xffff - ca)
					b += uint64(cb + 0xffff - ca)
					n++
				}
			}
			dst.SetRGBA(x, y, color.RGBA{uint8(r / n >> 8), uint8(g / n >> 8), uint8(b / n >> 8), 0xff})
		}
	}
	return dst
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

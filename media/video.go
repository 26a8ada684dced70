package media

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/bits"
)

// Video is what a message says about a video. Fields the container does
// not state (or that lie outside the bytes given) are zero: they are read,
// never estimated.
type Video struct {
	MIME string
	// Width and Height are the displayed size in pixels: for MP4 and
	// QuickTime the track header's size (already scaled for the pixel
	// aspect ratio), swapped when the track matrix rotates by 90° or 270°
	// (a portrait phone video); for WebM and Matroska PixelWidth and
	// PixelHeight.
	Width, Height int
	// DurationMs is the presentation duration: MP4 mvhd (or mehd for a
	// fragmented file, or the video track's mdhd), Matroska Segment Info
	// Duration × TimecodeScale.
	DurationMs uint32
}

// ErrNotVideo is returned for data VideoInfo cannot read, or a container
// whose track list was read and holds no video track (an M4A, an audio-only
// WebM: see AudioInfo).
var ErrNotVideo = errors.New("media: not an MP4, QuickTime, WebM or Matroska video")

// VideoInfo reads the type, dimensions and duration of an MP4 (ISO BMFF,
// 3GPP), QuickTime, WebM or Matroska video from head, the first len(head)
// octets of a file of size octets (head may be the whole file; a size
// smaller than len(head) counts as len(head)). Metadata stored past head
// (an MP4 whose moov box follows the media data, a WebM whose Tracks sit
// behind its clusters) is left zero; VideoInfoAt reads it from anywhere.
func VideoInfo(head []byte, size int64) (Video, error) {
	return VideoInfoAt(bytes.NewReader(head), max(size, int64(len(head))))
}

// VideoInfoAt is VideoInfo over a file of size octets read through r (an
// *os.File, a bytes.Reader, a blob being fetched). It reads box and element
// headers and a few small boxes only — some kilobytes whatever the file's
// size, never the media data — and issues a bounded number of reads.
func VideoInfoAt(r io.ReaderAt, size int64) (Video, error) {
	rd := newReader(r, size)
	if b, ok := readBMFF(rd); ok {
		return b.video()
	}
	if e, ok := readEBML(rd); ok {
		return e.video()
	}
	return Video{}, ErrNotVideo
}

// maxReads bounds the reads one parse issues, and with them its time
// and memory (each read is at most maxReadLen octets).
const (
	maxReads   = 8192
	maxReadLen = 128
)

// reader reads small windows of a file through an io.ReaderAt, with a
// budget of reads: no input can make a parser loop for long or allocate
// more than maxReads × maxReadLen octets, whatever its length fields say.
type reader struct {
	r    io.ReaderAt
	size int64
	left int
	// short records that the parse did not see all it walked: a read
	// returned less than the file's size promised (a head), the budget
	// ran out, or a box or element claimed more than its parent holds (a
	// truncated file). A track list read then may be incomplete.
	short bool
}

func newReader(r io.ReaderAt, size int64) *reader {
	return &reader{r: r, size: max(size, 0), left: maxReads}
}

// at returns up to n (at most maxReadLen) octets at off: fewer at the end
// of the file or of what r holds, nil past it or once the budget is spent.
func (r *reader) at(off int64, n int) []byte {
	if off < 0 || off >= r.size || n <= 0 {
		return nil
	}
	if r.left <= 0 {
		r.short = true
		return nil
	}
	r.left--
	n = int(min(int64(min(n, maxReadLen)), r.size-off))
	buf := make([]byte, n)
	k, _ := r.r.ReadAt(buf, off)
	if k < n {
		r.short = true
	}
	if k <= 0 {
		return nil
	}
	return buf[:k]
}

// durationMs returns units/scale seconds in milliseconds, rounded down and
// saturated at the largest uint32; zero for a zero scale.
func durationMs(units, scale uint64) uint32 {
	if scale == 0 {
		return 0
	}
	hi, lo := bits.Mul64(units, 1000)
	if hi >= scale {
		return math.MaxUint32
	}
	q, _ := bits.Div64(hi, lo, scale)
	return uint32(min(q, math.MaxUint32))
}

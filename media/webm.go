package media

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
)

// WebM and Matroska (EBML): the elements read are the EBML header's
// DocType, and in the Segment the SeekHead (to find Info and Tracks when
// they follow the clusters), Info (TimecodeScale, Duration) and Tracks
// (TrackType; Video PixelWidth, PixelHeight). Elements of unknown size
// (live recordings) are read up to the first Cluster of unknown size.

// EBML element IDs (with their length marker, as written).
const (
	ebmlHeaderID    = 0x1A45DFA3
	ebmlDocTypeID   = 0x4282
	mkvSegmentID    = 0x18538067
	mkvSeekHeadID   = 0x114D9B74
	mkvSeekID       = 0x4DBB
	mkvSeekIDID     = 0x53AB
	mkvSeekPosID    = 0x53AC
	mkvInfoID       = 0x1549A766
	mkvScaleID      = 0x2AD7B1
	mkvDurationID   = 0x4489
	mkvTracksID     = 0x1654AE6B
	mkvTrackEntryID = 0xAE
	mkvTrackTypeID  = 0x83
	mkvVideoID      = 0xE0
	mkvPixelWID     = 0xB0
	mkvPixelHID     = 0xBA
	mkvClusterID    = 0x1F43B675
)

type ebmlInfo struct {
	docType       string
	scale         uint64  // TimecodeScale, nanoseconds per tick
	duration      float64 // Info Duration, in ticks; 0 when absent
	info, tracks  bool    // Info, Tracks were read
	complete      bool    // the parse saw all it walked: Tracks is whole
	hasVideo      bool    // a video track was seen
	hasAudio      bool    // an audio track was seen
	width, height uint64  // the first video track's pixel size
}

// vint reads an EBML variable-length integer: an element ID (marker kept)
// or a data size (marker dropped; unknown is all ones). n is its length.
func vint(b []byte, id bool) (v uint64, n int, unknown, ok bool) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0, false, false
	}
	n = bits.LeadingZeros8(b[0]) + 1
	if n > len(b) || (id && n > 4) {
		return 0, 0, false, false
	}
	v = uint64(b[0])
	if !id {
		v &= 0xff >> n
	}
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, !id && v == 1<<(7*n)-1, true
}

// elements calls fn for each element in [start, end) with its ID and the
// extent of its data, until fn returns false, a header is malformed, an
// element of unknown size has been handed to fn (its end is not known:
// fn may read into it), or the read budget is spent. An element claiming
// more than its parent holds is cut to the parent.
func (r *reader) elements(start, end int64, fn func(id uint32, data, dataEnd int64, unknown bool) bool) {
	for off := start; off >= 0 && off < end; {
		h := r.at(off, 12)
		id, n, _, ok := vint(h, true)
		if !ok {
			return
		}
		size, m, unknown, ok := vint(h[n:], false)
		if !ok {
			return
		}
		data := off + int64(n+m)
		if data > end {
			return
		}
		dataEnd := end
		switch {
		case unknown:
		case size <= uint64(end-data):
			dataEnd = data + int64(size)
		default:
			r.short = true
		}
		if !fn(uint32(id), data, dataEnd, unknown) || unknown {
			return
		}
		off = dataEnd
	}
}

// uint reads an unsigned integer element of at most 8 octets.
func (r *reader) uint(data, end int64) (uint64, bool) {
	if end-data > 8 {
		return 0, false
	}
	b := r.at(data, int(end-data))
	if int64(len(b)) != end-data {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, true
}

// float reads a 4- or 8-octet float element.
func (r *reader) float(data, end int64) (float64, bool) {
	b := r.at(data, int(min(end-data, 9)))
	switch {
	case end-data == 4 && len(b) == 4:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(b))), true
	case end-data == 8 && len(b) == 8:
		return math.Float64frombits(binary.BigEndian.Uint64(b)), true
	}
	return 0, false
}

// readEBML reads a WebM or Matroska file's header, Info and Tracks; false
// if the file does not open with an EBML header of either document type.
func readEBML(r *reader) (ebmlInfo, bool) {
	if h := r.at(0, 4); len(h) < 4 || binary.BigEndian.Uint32(h) != ebmlHeaderID {
		return ebmlInfo{}, false
	}
	e := ebmlInfo{docType: "matroska", scale: 1_000_000} // the defaults
	header := false
	r.elements(0, r.size, func(id uint32, data, end int64, unknown bool) bool {
		switch {
		case id == ebmlHeaderID && !header:
			header = true
			r.elements(data, end, func(id uint32, data, end int64, _ bool) bool {
				if id == ebmlDocTypeID {
					b := r.at(data, int(min(end-data, 16)))
					e.docType = string(bytes.TrimRight(b, "\x00"))
					return false
				}
				return true
			})
			return !unknown
		case id == mkvSegmentID && header:
			r.segment(&e, data, end)
			return false
		}
		return true
	})
	if !header || (e.docType != "webm" && e.docType != "matroska") {
		return ebmlInfo{}, false
	}
	e.complete = !r.short
	return e, true
}

func (r *reader) segment(e *ebmlInfo, start, end int64) {
	var seekInfo, seekTracks int64 = -1, -1
	r.elements(start, end, func(id uint32, data, dataEnd int64, unknown bool) bool {
		switch id {
		case mkvSeekHeadID:
			r.elements(data, dataEnd, func(id uint32, data, dataEnd int64, _ bool) bool {
				if id != mkvSeekID {
					return true
				}
				var target uint64
				pos := int64(-1)
				r.elements(data, dataEnd, func(id uint32, data, dataEnd int64, _ bool) bool {
					switch id {
					case mkvSeekIDID:
						target, _ = r.uint(data, dataEnd)
					case mkvSeekPosID:
						if p, ok := r.uint(data, dataEnd); ok && p < uint64(end-start) {
							pos = start + int64(p)
						}
					}
					return true
				})
				switch {
				case pos < 0:
				case target == mkvInfoID:
					seekInfo = pos
				case target == mkvTracksID:
					seekTracks = pos
				}
				return true
			})
		case mkvInfoID:
			r.info(e, data, dataEnd)
		case mkvTracksID:
			r.tracks(e, data, dataEnd)
		case mkvClusterID:
			// Media data: the end of the walk if its size is unknown, or
			// if the SeekHead says where the missing elements are.
			if unknown || ((e.info || seekInfo >= 0) && (e.tracks || seekTracks >= 0)) {
				return false
			}
		}
		return !e.info || !e.tracks
	})
	// Info or Tracks behind the clusters: follow the SeekHead.
	for _, s := range []struct {
		pos  int64
		id   uint32
		done *bool
	}{{seekInfo, mkvInfoID, &e.info}, {seekTracks, mkvTracksID, &e.tracks}} {
		if s.pos < 0 || *s.done {
			continue
		}
		r.elements(s.pos, end, func(id uint32, data, dataEnd int64, _ bool) bool {
			switch {
			case id != s.id:
			case id == mkvInfoID:
				r.info(e, data, dataEnd)
			default:
				r.tracks(e, data, dataEnd)
			}
			return false
		})
	}
}

func (r *reader) info(e *ebmlInfo, start, end int64) {
	e.info = true
	r.elements(start, end, func(id uint32, data, dataEnd int64, _ bool) bool {
		switch id {
		case mkvScaleID:
			if v, ok := r.uint(data, dataEnd); ok && v > 0 {
				e.scale = v
			}
		case mkvDurationID:
			if v, ok := r.float(data, dataEnd); ok && v > 0 && !math.IsInf(v, 0) {
				e.duration = v
			}
		}
		return true
	})
}

func (r *reader) tracks(e *ebmlInfo, start, end int64) {
	e.tracks = true
	entries := 0
	r.elements(start, end, func(id uint32, data, dataEnd int64, _ bool) bool {
		if id != mkvTrackEntryID {
			return true
		}
		var typ, w, h uint64
		r.elements(data, dataEnd, func(id uint32, data, dataEnd int64, _ bool) bool {
			switch id {
			case mkvTrackTypeID:
				typ, _ = r.uint(data, dataEnd)
			case mkvVideoID:
				r.elements(data, dataEnd, func(id uint32, data, dataEnd int64, _ bool) bool {
					switch id {
					case mkvPixelWID:
						w, _ = r.uint(data, dataEnd)
					case mkvPixelHID:
						h, _ = r.uint(data, dataEnd)
					}
					return true
				})
			}
			return true
		})
		switch typ {
		case 1:
			if !e.hasVideo {
				e.hasVideo, e.width, e.height = true, w, h
			}
		case 2:
			e.hasAudio = true
		}
		entries++
		return entries < maxTracks
	})
}

// durationMs is Duration × TimecodeScale in milliseconds, 0 if absent or
// out of range.
func (e *ebmlInfo) durationMs() uint32 {
	ms := e.duration * float64(e.scale) / 1e6
	if !(ms > 0) || ms >= math.MaxUint32 {
		return 0
	}
	return uint32(ms)
}

func (e *ebmlInfo) video() (Video, error) {
	if e.tracks && e.complete && !e.hasVideo {
		return Video{}, ErrNotVideo
	}
	v := Video{MIME: "video/x-matroska", DurationMs: e.durationMs()}
	if e.docType == "webm" {
		v.MIME = "video/webm"
	}
	if e.width > 0 && e.height > 0 && e.width <= math.MaxInt32 && e.height <= math.MaxInt32 {
		v.Width, v.Height = int(e.width), int(e.height)
	}
	return v, nil
}

// audio describes a WebM or Matroska file with an audio track and no video
// track.
func (e *ebmlInfo) audio() (Audio, error) {
	if !e.hasAudio || e.hasVideo || !e.complete {
		return Audio{}, ErrNotAudio
	}
	a := Audio{MIME: "audio/x-matroska", DurationMs: e.durationMs()}
	if e.docType == "webm" {
		a.MIME = "audio/webm"
	}
	return a, nil
}

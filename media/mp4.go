package media

import (
	"encoding/binary"
	"math"
	"strings"
)

// ISO base media file format (MP4, M4A, 3GPP, QuickTime): the boxes read
// are ftyp, moov/mvhd, moov/mvex/mehd, and per track tkhd, mdia/hdlr,
// mdia/mdhd and mdia/minf/stbl/stsd (the first sample entry's size and
// coding name). Box sizes of 0 (to the end of the parent) and 1 (a 64-bit
// size follows) and version 1 (64-bit times) boxes are handled.

// maxTracks bounds the tracks kept from one file.
const maxTracks = 32

type bmffTrack struct {
	handler        string // hdlr handler type: "vide", "soun", ...
	width, height  uint32 // tkhd, 16.16 fixed point
	rotated        bool   // tkhd matrix turns by 90° or 270°
	entryW, entryH uint16 // visual sample entry (stsd), integer pixels
	timescale      uint32 // mdhd
	duration       uint64 // mdhd, in timescale units; 0 when unknown
	sampleEntry    string // stsd first entry type: "avc1", "mp4a", ...
}

type bmffInfo struct {
	brand        string   // ftyp major brand, "" without ftyp
	compat       []string // ftyp compatible brands (the first few)
	moov         bool     // a moov box was read
	complete     bool     // ... and all of it: tracks is the whole track list
	timescale    uint32   // mvhd
	duration     uint64   // mvhd, in timescale units; 0 when unknown
	fragDuration uint64   // mvex/mehd, in mvhd timescale units
	tracks       []bmffTrack
}

// quickTimeTops are the top-level atoms that may open a QuickTime file
// written without an ftyp box.
var quickTimeTops = map[string]bool{"moov": true, "mdat": true, "wide": true, "pnot": true, "free": true, "skip": true}

// boxes calls fn for each box in [start, end) with its type and the
// extent of its body, until fn returns false, a header is malformed or
// the read budget is spent. A box claiming more than its parent holds is
// cut to the parent (a truncated file); one claiming less than its own
// header ends the walk, so zero-length boxes cannot loop.
func (r *reader) boxes(start, end int64, fn func(typ string, body, bodyEnd int64) bool) {
	for off := start; off >= 0 && off+8 <= end; {
		h := r.at(off, 16)
		if len(h) < 8 {
			return
		}
		size, hdr := uint64(binary.BigEndian.Uint32(h)), int64(8)
		switch size {
		case 0: // to the end of the parent (of the file, at the top)
			size = uint64(end - off)
		case 1:
			if len(h) < 16 {
				return
			}
			size, hdr = binary.BigEndian.Uint64(h[8:]), 16
		}
		if size > uint64(end-off) {
			size, r.short = uint64(end-off), true
		}
		if size < uint64(hdr) {
			return
		}
		if !fn(string(h[4:8]), off+hdr, off+int64(size)) {
			return
		}
		off += int64(size)
	}
}

// readBMFF reads an ISO BMFF or QuickTime file's boxes; false if the file
// does not open with ftyp or a QuickTime top-level atom.
func readBMFF(r *reader) (bmffInfo, bool) {
	h := r.at(0, 8)
	if len(h) < 8 {
		return bmffInfo{}, false
	}
	if typ := string(h[4:8]); typ != "ftyp" && !quickTimeTops[typ] {
		return bmffInfo{}, false
	}
	var info bmffInfo
	r.boxes(0, r.size, func(typ string, body, end int64) bool {
		switch typ {
		case "ftyp":
			b := r.at(body, maxReadLen)
			if len(b) < 4 || info.brand != "" {
				return false
			}
			info.brand = string(b[:4])
			for i := 8; i+4 <= len(b) && int64(i+4) <= end-body; i += 4 {
				info.compat = append(info.compat, string(b[i:i+4]))
			}
		case "moov":
			if info.moov {
				return false
			}
			info.moov = true
			r.moov(&info, body, end)
			return false // all a reader needs is in moov
		}
		return true
	})
	info.complete = info.moov && !r.short
	return info, true
}

func (r *reader) moov(info *bmffInfo, start, end int64) {
	r.boxes(start, end, func(typ string, body, end int64) bool {
		switch typ {
		case "mvhd":
			info.timescale, info.duration = r.mediaHeader(body)
		case "mvex":
			r.boxes(body, end, func(typ string, body, _ int64) bool {
				if typ == "mehd" {
					b := r.at(body, 12)
					switch {
					case len(b) >= 12 && b[0] == 1:
						info.fragDuration = binary.BigEndian.Uint64(b[4:])
					case len(b) >= 8 && b[0] == 0:
						info.fragDuration = uint64(binary.BigEndian.Uint32(b[4:]))
					}
					return false
				}
				return true
			})
		case "trak":
			if len(info.tracks) < maxTracks {
				var t bmffTrack
				r.trak(&t, body, end)
				info.tracks = append(info.tracks, t)
			}
		}
		return true
	})
}

// mediaHeader reads the timescale and duration of an mvhd or mdhd box
// (they share their first fields); a duration of all ones (unknown) is 0.
func (r *reader) mediaHeader(body int64) (timescale uint32, duration uint64) {
	var unknown bool
	b := r.at(body, 32)
	switch {
	case len(b) >= 32 && b[0] == 1:
		timescale, duration = binary.BigEndian.Uint32(b[20:]), binary.BigEndian.Uint64(b[24:])
		unknown = duration == math.MaxUint64
	case len(b) >= 20 && b[0] == 0:
		timescale, duration = binary.BigEndian.Uint32(b[12:]), uint64(binary.BigEndian.Uint32(b[16:]))
		unknown = duration == math.MaxUint32
	}
	if unknown {
		duration = 0
	}
	return timescale, duration
}

func (r *reader) trak(t *bmffTrack, start, end int64) {
	r.boxes(start, end, func(typ string, body, end int64) bool {
		switch typ {
		case "tkhd":
			r.tkhd(t, body)
		case "mdia":
			r.boxes(body, end, func(typ string, body, end int64) bool {
				switch typ {
				case "hdlr":
					if b := r.at(body, 12); len(b) == 12 {
						t.handler = string(b[8:12])
					}
				case "mdhd":
					t.timescale, t.duration = r.mediaHeader(body)
				case "minf":
					r.boxes(body, end, func(typ string, body, end int64) bool {
						if typ != "stbl" {
							return true
						}
						r.boxes(body, end, func(typ string, body, end int64) bool {
							if typ == "stsd" {
								r.stsd(t, body, end)
								return false
							}
							return true
						})
						return false
					})
				}
				return true
			})
		}
		return true
	})
}

// tkhd reads a track header's width, height (16.16) and rotation.
func (r *reader) tkhd(t *bmffTrack, body int64) {
	b := r.at(body, 96)
	if len(b) < 1 {
		return
	}
	matrix := 40 // version 0: 32-bit times
	if b[0] == 1 {
		matrix = 52
	} else if b[0] != 0 {
		return
	}
	if len(b) < matrix+44 {
		return
	}
	a, bb := int32(binary.BigEndian.Uint32(b[matrix:])), int32(binary.BigEndian.Uint32(b[matrix+4:]))
	c, d := int32(binary.BigEndian.Uint32(b[matrix+12:])), int32(binary.BigEndian.Uint32(b[matrix+16:]))
	t.rotated = a == 0 && d == 0 && bb != 0 && c != 0
	t.width = binary.BigEndian.Uint32(b[matrix+36:])
	t.height = binary.BigEndian.Uint32(b[matrix+40:])
}

// stsd reads the first sample entry's coding name and, for a visual
// entry, its width and height.
func (r *reader) stsd(t *bmffTrack, body, end int64) {
	b := r.at(body, 44)
	if len(b) < 16 || binary.BigEndian.Uint32(b[4:]) == 0 {
		return
	}
	entrySize := int64(binary.BigEndian.Uint32(b[8:]))
	t.sampleEntry = string(b[12:16])
	if t.handler == "vide" && len(b) >= 44 && entrySize >= 36 && body+8+entrySize <= end {
		t.entryW, t.entryH = binary.BigEndian.Uint16(b[40:]), binary.BigEndian.Uint16(b[42:])
	}
}

// bmffMIME maps a major brand (and compatible brands) to a MIME type.
func bmffMIME(brand string, compat []string) string {
	switch {
	case brand == "M4A " || brand == "M4B " || brand == "M4P " || brand == "F4A " || brand == "F4B ":
		return "audio/mp4"
	case brand == "qt  " || brand == "":
		return "video/quicktime"
	case strings.HasPrefix(brand, "3gp"):
		return "video/3gpp"
	case strings.HasPrefix(brand, "3g2"):
		return "video/3gpp2"
	case brand == "avif" || brand == "avis":
		return "image/avif"
	case brand == "heic" || brand == "heix" || brand == "heim" || brand == "heis" || brand == "hevc" || brand == "hevx":
		return "image/heic"
	case brand == "mif1" || brand == "msf1":
		for _, c := range compat {
			if c == "avif" || c == "avis" {
				return "image/avif"
			}
		}
		return "image/heif"
	}
	return "video/mp4"
}

func (b *bmffInfo) track(handler string) (bmffTrack, bool) {
	for _, t := range b.tracks {
		if t.handler == handler {
			return t, true
		}
	}
	return bmffTrack{}, false
}

// durationMs is the presentation duration: mvhd, else mehd, else the
// given track's media duration.
func (b *bmffInfo) durationMs(t bmffTrack) uint32 {
	switch {
	case b.duration > 0 && b.timescale > 0:
		return durationMs(b.duration, uint64(b.timescale))
	case b.fragDuration > 0 && b.timescale > 0:
		return durationMs(b.fragDuration, uint64(b.timescale))
	}
	return durationMs(t.duration, uint64(t.timescale))
}

func (b *bmffInfo) video() (Video, error) {
	mime := bmffMIME(b.brand, b.compat)
	t, ok := b.track("vide")
	if !ok {
		// No video track, or the track list was not (all) read.
		if b.complete || !strings.HasPrefix(mime, "video/") {
			return Video{}, ErrNotVideo
		}
		return Video{MIME: mime}, nil
	}
	if !strings.HasPrefix(mime, "video/") {
		mime = "video/mp4"
	}
	v := Video{MIME: mime, DurationMs: b.durationMs(t)}
	if w, h := int((t.width+0x8000)>>16), int((t.height+0x8000)>>16); w > 0 && h > 0 {
		v.Width, v.Height = w, h
		if t.rotated {
			v.Width, v.Height = h, w
		}
	} else if t.entryW > 0 && t.entryH > 0 {
		v.Width, v.Height = int(t.entryW), int(t.entryH)
		if t.rotated {
			v.Width, v.Height = v.Height, v.Width
		}
	}
	return v, nil
}

// audio describes an MP4 holding a sound track and no video track.
func (b *bmffInfo) audio() (Audio, error) {
	t, ok := b.track("soun")
	if !ok || !b.complete {
		return Audio{}, ErrNotAudio
	}
	if _, video := b.track("vide"); video {
		return Audio{}, ErrNotAudio
	}
	mime := "audio/mp4"
	switch m := bmffMIME(b.brand, b.compat); m {
	case "video/3gpp", "video/3gpp2":
		mime = "audio/" + strings.TrimPrefix(m, "video/")
	}
	return Audio{MIME: mime, DurationMs: b.durationMs(t)}, nil
}

package media

import "encoding/binary"

// MPEG audio (MP3, and MP2/MP1): the duration is the frame count of a
// Xing/Info or VBRI header when the first frame carries one, else the
// samples of the frames themselves, counted by walking the frame headers
// (exact for CBR and VBR alike; damaged stretches are skipped by
// resynchronising on two consecutive frames). ID3v2 tags before the audio
// and an ID3v1 tag after it are skipped. Free-format streams (bitrate
// index 0) are not read. Decoding, for a waveform, is not done.

// mpegFrame is one MPEG audio frame header.
type mpegFrame struct {
	length  int    // octets, header included
	samples int    // per channel
	rate    int    // samples per second
	mpeg1   bool   // MPEG-1 (else MPEG-2 or 2.5)
	layer   int    // 1, 2 or 3
	mono    bool   // single channel
	key     uint32 // version, layer and sample rate: shared by one stream's frames
}

// Bitrates in kbit/s by [MPEG-1 ? 0 : 1][layer-1][index].
var mpegBitrates = [2][3][15]int{
	{
		{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
	},
	{
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
	},
}

// Sample rates by version bits (0: MPEG-2.5, 2: MPEG-2, 3: MPEG-1) and index.
var mpegRates = [4][3]int{{11025, 12000, 8000}, {}, {22050, 24000, 16000}, {44100, 48000, 32000}}

// mpegHeader parses the four-octet frame header at the start of b.
func mpegHeader(b []byte) (mpegFrame, bool) {
	if len(b) < 4 || b[0] != 0xff || b[1]&0xe0 != 0xe0 {
		return mpegFrame{}, false
	}
	version, layerBits := b[1]>>3&3, b[1]>>1&3
	brIndex, srIndex, pad := int(b[2]>>4), int(b[2]>>2&3), int(b[2]>>1&1)
	if version == 1 || layerBits == 0 || brIndex == 0 || brIndex == 15 || srIndex == 3 || b[3]&3 == 2 {
		return mpegFrame{}, false
	}
	f := mpegFrame{
		mpeg1: version == 3,
		layer: 4 - int(layerBits),
		rate:  mpegRates[version][srIndex],
		mono:  b[3]>>6 == 3,
		key:   uint32(b[1]&0xfe)<<8 | uint32(b[2]&0x0c),
	}
	row := 1
	if f.mpeg1 {
		row = 0
	}
	bitrate := mpegBitrates[row][f.layer-1][brIndex] * 1000
	switch {
	case f.layer == 1:
		f.length, f.samples = (12*bitrate/f.rate+pad)*4, 384
	case f.layer == 2 || f.mpeg1:
		f.length, f.samples = 144*bitrate/f.rate+pad, 1152
	default: // layer III, MPEG-2 and 2.5
		f.length, f.samples = 72*bitrate/f.rate+pad, 576
	}
	return f, f.length > 4
}

// vbrFrames reads the frame count of a Xing/Info or VBRI header in the
// frame at the start of b; header reports whether either header is there.
func vbrFrames(b []byte, f mpegFrame) (frames uint32, header bool) {
	b = b[:min(len(b), f.length)]
	if f.layer == 3 {
		side := 17 // side information after the header, before the tag
		switch {
		case f.mpeg1 && !f.mono:
			side = 32
		case !f.mpeg1 && f.mono:
			side = 9
		}
		if x := b[min(len(b), 4+side):]; len(x) >= 8 && (string(x[:4]) == "Xing" || string(x[:4]) == "Info") {
			if binary.BigEndian.Uint32(x[4:])&1 != 0 && len(x) >= 12 {
				return binary.BigEndian.Uint32(x[8:]), true
			}
			return 0, true
		}
	}
	if x := b[min(len(b), 36):]; len(x) >= 18 && string(x[:4]) == "VBRI" {
		return binary.BigEndian.Uint32(x[14:]), true
	}
	return 0, false
}

// id3v2Size returns the length of an ID3v2 tag at the start of b, or 0.
func id3v2Size(b []byte) int {
	if len(b) < 10 || string(b[:3]) != "ID3" || b[3] == 0xff || b[4] == 0xff {
		return 0
	}
	n := 0
	for _, c := range b[6:10] {
		if c&0x80 != 0 {
			return 0
		}
		n = n<<7 | int(c)
	}
	n += 10
	if b[5]&0x10 != 0 { // footer
		n += 10
	}
	return n
}

// maxMP3Lead bounds how far after an ID3v2 tag the first frame is looked for.
const maxMP3Lead = 64 << 10

// mp3Info reads the duration of an MPEG audio file; false if data does not
// hold one: a frame at the start (after ID3v2 tags, within maxMP3Lead),
// confirmed by a Xing/Info/VBRI header, by a second frame of the same
// stream right after it, or by ending the file.
func mp3Info(data []byte) (Audio, bool) {
	start, tagged := 0, false
	for range 4 {
		n := id3v2Size(data[start:])
		if n == 0 {
			break
		}
		start, tagged = start+n, true
		if start >= len(data) {
			return Audio{}, false
		}
	}
	end := len(data)
	if end-128 >= start && string(data[end-128:end-125]) == "TAG" {
		end -= 128
	}
	if start >= end {
		return Audio{}, false
	}
	data = data[:end]
	last := start
	if tagged {
		last = min(end, start+maxMP3Lead)
	}
	for off := start; off <= last && off+4 <= end; off++ {
		f, ok := mpegHeader(data[off:])
		if !ok {
			continue
		}
		frames, header := vbrFrames(data[off:], f)
		if !header && !mpegConfirmed(data, off, f) {
			continue
		}
		a := Audio{MIME: "audio/mpeg"}
		if frames > 0 {
			a.DurationMs = durationMs(uint64(frames)*uint64(f.samples), uint64(f.rate))
			return a, true
		}
		if header {
			off += f.length // an Info frame without a count is not audio
		}
		a.DurationMs = durationMs(mpegSamples(data, off, f.key), uint64(f.rate))
		return a, true
	}
	return Audio{}, false
}

// frameParser reads the header of a frame of a self-synchronising audio
// stream (MPEG audio, ADTS): its length in octets, its samples and a key
// that a stream's frames share.
type frameParser func(b []byte) (length, samples int, key uint32, ok bool)

func mpegFrameParser(b []byte) (int, int, uint32, bool) {
	f, ok := mpegHeader(b)
	return f.length, f.samples, f.key, ok
}

// mpegConfirmed reports whether the MPEG audio frame f at off is followed
// by a frame of the same stream or ends data.
func mpegConfirmed(data []byte, off int, f mpegFrame) bool {
	return frameConfirmed(data, off, f.length, f.key, mpegFrameParser)
}

// frameConfirmed reports whether the frame of length octets at off is
// followed by a frame of stream key or ends data.
func frameConfirmed(data []byte, off, length int, key uint32, parse frameParser) bool {
	next := off + length
	if next == len(data) {
		return true
	}
	_, _, k, ok := parse(data[min(next, len(data)):])
	return ok && k == key
}

// mpegSamples counts the samples of the MPEG audio frames of stream key
// from off on.
func mpegSamples(data []byte, off int, key uint32) uint64 {
	return countSamples(data, off, key, mpegFrameParser)
}

// countSamples counts the samples of the frames of stream key from off
// on, skipping damaged stretches up to the next confirmed frame. Every
// step moves forward, so it ends after len(data) steps at most.
func countSamples(data []byte, off int, key uint32, parse frameParser) uint64 {
	var n uint64
	for off+4 <= len(data) {
		if length, samples, k, ok := parse(data[off:]); ok && k == key && off+length <= len(data) {
			n += uint64(samples)
			off += length
			continue
		}
		for off++; off+4 <= len(data); off++ {
			if length, _, k, ok := parse(data[off:]); ok && k == key && frameConfirmed(data, off, length, key, parse) {
				break
			}
		}
	}
	return n
}

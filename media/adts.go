package media

// AAC in ADTS framing (.aac files, some voice recorders): the duration is
// the samples of the frames, counted by walking their headers (1024
// samples per raw data block). AAC in MP4 (.m4a) is read from its boxes.

// adtsRates are the sample rates by sampling_frequency_index.
var adtsRates = [13]int{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}

// adtsHeader reads an ADTS frame header (7 octets, 9 with a CRC) at the
// start of b; the key is the MPEG version, profile, sample rate and
// channel configuration, which a stream's frames share.
func adtsHeader(b []byte) (length, samples int, key uint32, ok bool) {
	if len(b) < 7 || b[0] != 0xff || b[1]&0xf6 != 0xf0 {
		return 0, 0, 0, false
	}
	sfi := int(b[2] >> 2 & 0x0f)
	length = int(b[3]&3)<<11 | int(b[4])<<3 | int(b[5]>>5)
	header := 7
	if b[1]&1 == 0 { // protection_absent clear: a CRC follows
		header = 9
	}
	if sfi >= len(adtsRates) || length <= header {
		return 0, 0, 0, false
	}
	key = uint32(b[1]&0x08)<<16 | uint32(b[2]&0xfd)<<8 | uint32(b[3]&0xc0)
	return length, 1024 * (int(b[6]&3) + 1), key, true
}

// adtsInfo reads the duration of an ADTS AAC file; false if data does not
// open (after ID3v2 tags) with a frame confirmed by the next one or by
// the end of the data.
func adtsInfo(data []byte) (Audio, bool) {
	start := 0
	for range 4 {
		n := id3v2Size(data[start:])
		if n == 0 {
			break
		}
		if start += n; start >= len(data) {
			return Audio{}, false
		}
	}
	length, _, key, ok := adtsHeader(data[start:])
	if !ok || !frameConfirmed(data, start, length, key, adtsHeader) {
		return Audio{}, false
	}
	rate := adtsRates[data[start+2]>>2&0x0f]
	return Audio{MIME: "audio/aac", DurationMs: durationMs(countSamples(data, start, key, adtsHeader), uint64(rate))}, true
}

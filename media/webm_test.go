package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// Builders of minimal EBML (WebM, Matroska) files.

// el writes an element: its ID as written (1-4 octets) and a data size of
// one octet when it fits, else eight.
func el(id uint32, parts ...[]byte) []byte {
	body := cat(parts...)
	idb := binary.BigEndian.AppendUint32(nil, id)
	for len(idb) > 1 && idb[0] == 0 {
		idb = idb[1:]
	}
	if len(body) < 127 {
		return cat(idb, []byte{0x80 | byte(len(body))}, body)
	}
	size := binary.BigEndian.AppendUint64(nil, uint64(len(body)))
	size[0] = 0x01
	return cat(idb, size, body)
}

// elUnknown writes an element of unknown size (all ones, one octet).
func elUnknown(id uint32, parts ...[]byte) []byte {
	e := el(id)
	return cat(e[:len(e)-1], []byte{0xff}, cat(parts...))
}

func elUint(id uint32, v uint64) []byte { return el(id, be64(v)) }

func elFloat(id uint32, v float64) []byte { return el(id, be64(math.Float64bits(v))) }

func ebmlHead(docType string) []byte {
	return el(ebmlHeaderID, elUint(0x4286, 1), el(ebmlDocTypeID, []byte(docType)), elUint(0x4287, 4))
}

func videoTrack(w, h uint64) []byte {
	return el(mkvTrackEntryID, elUint(0xD7, 1), elUint(mkvTrackTypeID, 1), el(0x86, []byte("V_VP9")),
		el(mkvVideoID, elUint(mkvPixelWID, w), elUint(mkvPixelHID, h)))
}

func audioTrack() []byte {
	return el(mkvTrackEntryID, elUint(0xD7, 2), elUint(mkvTrackTypeID, 2), el(0x86, []byte("A_OPUS")))
}

func cluster(n int) []byte {
	return el(mkvClusterID, elUint(0xE7, 0), el(0xA3, make([]byte, n)))
}

// webmVideo is a 640×360 WebM of 5.5 s with a video and an audio track.
func webmVideo() []byte {
	return cat(ebmlHead("webm"), el(mkvSegmentID,
		el(mkvInfoID, elUint(mkvScaleID, 1_000_000), elFloat(mkvDurationID, 5500), el(0x4D80, []byte("test"))),
		el(mkvTracksID, videoTrack(640, 360), audioTrack()),
		cluster(500)))
}

// webmSeekHead has its Info and Tracks behind a cluster, found through
// the SeekHead.
func webmSeekHead() []byte {
	seekHead := func(infoPos, tracksPos uint64) []byte {
		return el(mkvSeekHeadID,
			el(mkvSeekID, el(mkvSeekIDID, be32(mkvInfoID)), elUint(mkvSeekPosID, infoPos)),
			el(mkvSeekID, el(mkvSeekIDID, be32(mkvTracksID)), elUint(mkvSeekPosID, tracksPos)))
	}
	cl := cluster(3000)
	info := el(mkvInfoID, elUint(mkvScaleID, 1_000_000), elFloat(mkvDurationID, 90_000))
	tracks := el(mkvTracksID, audioTrack(), videoTrack(1920, 800))
	sh := seekHead(0, 0)
	infoPos := uint64(len(sh) + len(cl))
	return cat(ebmlHead("webm"), el(mkvSegmentID, seekHead(infoPos, infoPos+uint64(len(info))), cl, info, tracks))
}

func TestVideoInfoWebM(t *testing.T) {
	f32 := be32(math.Float32bits(2e6))
	cases := []struct {
		name string
		file []byte
		want Video
	}{
		{"webm", webmVideo(), Video{"video/webm", 640, 360, 5500}},
		{"matroska, float32 duration, µs ticks", cat(ebmlHead("matroska"), el(mkvSegmentID,
			el(mkvInfoID, elUint(mkvScaleID, 1000), el(mkvDurationID, f32)), el(mkvTracksID, videoTrack(720, 480)))),
			Video{"video/x-matroska", 720, 480, 2000}},
		{"live recording: unknown sizes, no duration", cat(ebmlHead("webm"), elUnknown(mkvSegmentID,
			el(mkvInfoID, elUint(mkvScaleID, 1_000_000)), el(mkvTracksID, audioTrack(), videoTrack(1280, 720)),
			elUnknown(mkvClusterID, elUint(0xE7, 0)))), Video{"video/webm", 1280, 720, 0}},
		{"info and tracks after a cluster", webmSeekHead(), Video{"video/webm", 1920, 800, 90_000}},
		{"no tracks: type and duration", cat(ebmlHead("webm"), el(mkvSegmentID,
			el(mkvInfoID, elFloat(mkvDurationID, 1234)))), Video{"video/webm", 0, 0, 1234}},
	}
	for _, c := range cases {
		v, err := VideoInfo(c.file, int64(len(c.file)))
		if err != nil || v != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.name, v, err, c.want)
		}
		if got := Sniff(c.file, ""); got != c.want.MIME {
			t.Errorf("%s: Sniff = %s", c.name, got)
		}
		if _, err := AudioInfo(c.file); err == nil && c.want.Width > 0 {
			t.Errorf("%s: AudioInfo accepted a video", c.name)
		}
	}
	// Behind the head: the type only.
	f := webmSeekHead()
	if v, err := VideoInfo(f[:200], int64(len(f))); err != nil || v != (Video{MIME: "video/webm"}) {
		t.Errorf("head only: %+v %v", v, err)
	}
	// Other EBML documents are not videos.
	other := cat(ebmlHead("notmkv"), el(mkvSegmentID))
	if _, err := VideoInfo(other, int64(len(other))); !errors.Is(err, ErrNotVideo) {
		t.Errorf("other DocType: %v", err)
	}
	if _, err := VideoInfo([]byte("not a video at all"), 18); !errors.Is(err, ErrNotVideo) {
		t.Errorf("text: %v", err)
	}
}

func TestWebMAudio(t *testing.T) {
	voice := cat(ebmlHead("webm"), el(mkvSegmentID,
		el(mkvInfoID, elUint(mkvScaleID, 1_000_000), elFloat(mkvDurationID, 3210.7)),
		el(mkvTracksID, audioTrack()), cluster(100)))
	if a, err := AudioInfo(voice); err != nil || !sameAudio(a, Audio{MIME: "audio/webm", DurationMs: 3210}) {
		t.Errorf("webm voice: %+v %v", a, err)
	}
	if _, err := VideoInfo(voice, int64(len(voice))); !errors.Is(err, ErrNotVideo) {
		t.Errorf("VideoInfo(audio webm) = %v", err)
	}
	mka := cat(ebmlHead("matroska"), elUnknown(mkvSegmentID, el(mkvTracksID, audioTrack())))
	if a, err := AudioInfo(mka); err != nil || !sameAudio(a, Audio{MIME: "audio/x-matroska"}) {
		t.Errorf("mka without duration: %+v %v", a, err)
	}
}

func TestWebMBounded(t *testing.T) {
	voids := bytes.Repeat(el(0xEC), 100_000)
	cases := map[string][]byte{
		"100000 voids":            cat(ebmlHead("webm"), el(mkvSegmentID, voids)),
		"100000 unknown clusters": cat(ebmlHead("webm"), elUnknown(mkvSegmentID, bytes.Repeat(el(mkvClusterID), 100_000))),
		"huge sizes":              cat(ebmlHead("webm"), []byte{0x18, 0x53, 0x80, 0x67, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}, el(mkvInfoID, []byte{0x44, 0x89, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0})),
		"nested unknowns":         cat(ebmlHead("webm"), bytes.Repeat([]byte{0x18, 0x53, 0x80, 0x67, 0xff, 0x16, 0x54, 0xae, 0x6b, 0xff, 0xae, 0xff}, 10_000)),
		"seek loop":               cat(ebmlHead("webm"), el(mkvSegmentID, el(mkvSeekHeadID, el(mkvSeekID, el(mkvSeekIDID, be32(mkvInfoID)), elUint(mkvSeekPosID, 0))), cluster(10))),
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

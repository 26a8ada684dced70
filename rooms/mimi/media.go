package mimi

import (
	"errors"
	"fmt"
	"strings"
)

// MediaInfo is what MIMI has no field for: dimensions of images and video,
// duration and waveform of audio. Parley carries it in the private-use
// extension KeyParleyMedia, keyed by the partIndex of the ExternalPart it
// describes (note §6.4).
type MediaInfo struct {
	Width      uint32 `cbor:"1,keyasint,omitempty"`
	Height     uint32 `cbor:"2,keyasint,omitempty"`
	DurationMs uint32 `cbor:"3,keyasint,omitempty"`
	Waveform   []byte `cbor:"4,keyasint,omitempty"` // loudness per bucket, 0..255
	Voice      bool   `cbor:"5,keyasint,omitempty"` // a recorded voice message
}

func (m MediaInfo) empty() bool {
	return m.Width == 0 && m.Height == 0 && m.DurationMs == 0 && len(m.Waveform) == 0 && !m.Voice
}

// MediaRef names one encrypted blob of package media and what a receiver
// needs to fetch, check and decrypt it.
type MediaRef struct {
	CID         string // root CID of the blob; the URL is MediaURL(CID)
	ContentHash []byte // SHA-256 of the whole ciphertext (hashAlg 1)
	Key         []byte // the file key (encAlg EncAlgParleyStream)
	Size        uint64 // plaintext octets
	MIME        string
	Name        string
	Description string
	Info        MediaInfo
}

func (m *MediaRef) part(d Disposition) Part {
	return Part{Disposition: d, Cardinality: ExternalPart, ContentType: m.MIME, External: &External{
		URL:         MediaURL(m.CID),
		Size:        m.Size,
		EncAlg:      EncAlgParleyStream,
		Key:         m.Key,
		Nonce:       []byte{},
		AAD:         []byte{},
		HashAlg:     HashAlgSHA256,
		ContentHash: m.ContentHash,
		Description: m.Description,
		Filename:    m.Name,
	}}
}

// Attach builds a media message: the file as an ExternalPart (inline for
// images, video and voice, attachment otherwise), its thumbnail (if any) as
// a preview ExternalPart next to it, and a caption (if any) as a further
// part, all in one processAll multipart. Dimensions, durations and
// waveforms go into the KeyParleyMedia extension.
func Attach(h Header, file MediaRef, thumb *MediaRef, caption *Part) (*Content, error) {
	if file.CID == "" || len(file.Key) == 0 {
		return nil, errors.New("mimi: attachment without CID or key")
	}
	d := Attachment
	if base, _, _ := strings.Cut(file.MIME, "/"); base == "image" || base == "video" || file.Info.Voice {
		d = Inline
	}
	parts := []Part{file.part(d)}
	infos := map[uint64]MediaInfo{}
	if thumb != nil {
		parts = append(parts, thumb.part(Preview))
	}
	if caption != nil {
		parts = append(parts, *caption)
	}
	body := parts[0]
	if len(parts) > 1 {
		body = Part{Disposition: d, Cardinality: MultiPart, Semantics: ProcessAll, Parts: parts}
	}
	c := New(h, body)
	// partIndex: 0 for a lone part; otherwise 1 (file) and 2 (thumbnail).
	fileIndex := uint64(0)
	if len(parts) > 1 {
		fileIndex = 1
	}
	if !file.Info.empty() {
		infos[fileIndex] = file.Info
	}
	if thumb != nil && !thumb.Info.empty() {
		infos[2] = thumb.Info
	}
	if len(infos) > 0 {
		raw, err := encMode.Marshal(infos)
		if err != nil {
			return nil, fmt.Errorf("mimi: encode media info: %w", err)
		}
		c.Extensions.SetRaw(KeyParleyMedia, raw)
	}
	return c, nil
}

// Media is one Parley media part found in a message.
type Media struct {
	Index     int // partIndex
	Ref       MediaRef
	Thumbnail *MediaRef // the preview part beside it, if any
}

// MediaParts returns the Parley media parts of c (ExternalParts with a
// parley: URL that are not previews), each with its thumbnail and info.
func (c *Content) MediaParts() []Media {
	infos := map[uint64]MediaInfo{}
	if raw, ok := c.Extensions[KeyParleyMedia]; ok {
		_ = decMode.Unmarshal(raw, &infos) // unknown shapes are ignored
	}
	ref := func(i int, p *Part) (MediaRef, bool) {
		if p.Cardinality != ExternalPart || p.External == nil {
			return MediaRef{}, false
		}
		cid, ok := MediaCID(p.External.URL)
		if !ok {
			return MediaRef{}, false
		}
		x := p.External
		return MediaRef{CID: cid, ContentHash: x.ContentHash, Key: x.Key, Size: x.Size,
			MIME: p.ContentType, Name: x.Filename, Description: x.Description, Info: infos[uint64(i)]}, true
	}
	var out []Media
	var thumbs []MediaRef
	c.Body.Walk(func(i int, p *Part) bool {
		r, ok := ref(i, p)
		switch {
		case !ok:
		case p.Disposition == Preview:
			thumbs = append(thumbs, r)
		default:
			out = append(out, Media{Index: i, Ref: r})
		}
		return true
	})
	if len(out) == 1 && len(thumbs) == 1 {
		out[0].Thumbnail = &thumbs[0]
	}
	return out
}

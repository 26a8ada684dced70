package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/rooms/mimi"
)

// Media messages (`send-file`): the file is imported into the blob store
// encrypted under a fresh file key; the key, the ciphertext hash and the
// metadata (image dimensions and a thumbnail, audio duration and waveform)
// travel only inside the message's MIMI content, which an encrypted room
// seals like any other message.

// maxMetaRead bounds how much of a file is read into memory for its
// metadata; larger files are sent without dimensions or duration.
const maxMetaRead = 64 << 20

// attach imports the file at path (and, for an image, a thumbnail) and
// describes it for mimi.Attach.
func (m *Media) attach(path string, voice bool) (mimi.MediaRef, *mimi.MediaRef, error) {
	var none mimi.MediaRef
	if !filepath.IsAbs(path) {
		return none, nil, errorf(api.KindInvalid, "file path %q is not absolute", path)
	}
	f, err := openRegular(path)
	if err != nil {
		return none, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return none, nil, errorf(api.KindInvalid, "cannot read %s: %v", path, unwrapPathErr(err))
	}
	return m.attachFrom(f, st.Size(), path, filepath.Base(path), voice)
}

// mediaSource is what attachFrom reads a file from: an open file, or the
// bytes of a file inside an export.
type mediaSource interface {
	io.ReadSeeker
	io.ReaderAt
}

// attachFrom imports the size bytes of f, the file name (shown as
// path in errors), as attach does.
func (m *Media) attachFrom(f mediaSource, size int64, path, name string, voice bool) (mimi.MediaRef, *mimi.MediaRef, error) {
	var none mimi.MediaRef
	head := make([]byte, 512)
	k, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return none, nil, errorf(api.KindInvalid, "cannot read %s: %v", path, unwrapPathErr(err))
	}
	head = head[:k]
	ref := mimi.MediaRef{MIME: media.Sniff(head, name), Name: name}
	var data []byte // the whole file, where metadata needs it
	if size <= maxMetaRead {
		if data, err = io.ReadAll(io.NewSectionReader(f, 0, size)); err != nil {
			return none, nil, errorf(api.KindInvalid, "cannot read %s: %v", path, unwrapPathErr(err))
		}
	}
	var thumb *mimi.MediaRef
	meta := data
	if meta == nil {
		meta = head // dimensions from the header alone, no thumbnail
	}
	if img, err := media.ImageInfo(meta); err == nil {
		ref.MIME, ref.Info.Width, ref.Info.Height = img.MIME, uint32(img.Width), uint32(img.Height)
		if data != nil {
			if jpg, w, h, err := media.Thumbnail(data, media.ThumbnailMax); err == nil {
				t, err := m.importBytes(bytes.NewReader(jpg))
				if err != nil {
					return none, nil, err
				}
				t.MIME, t.Name, t.Info.Width, t.Info.Height = "image/jpeg", "thumbnail.jpg", uint32(w), uint32(h)
				thumb = &t
			}
		}
	}
	// A video's headers: VideoInfoAt reads a few KB wherever the container
	// keeps them, whatever the file's size.
	if v, err := media.VideoInfoAt(f, size); err == nil && !voice {
		ref.MIME, ref.Info.Width, ref.Info.Height, ref.Info.DurationMs = v.MIME, uint32(v.Width), uint32(v.Height), v.DurationMs
	} else if data != nil {
		if a, err := media.AudioInfo(data); err == nil {
			if a.MIME != "" {
				ref.MIME = a.MIME
			}
			ref.Info.DurationMs, ref.Info.Waveform = a.DurationMs, a.Waveform
		} else if voice {
			return none, nil, errorf(api.KindInvalid, "--voice needs an audio file (WAV, Ogg Opus or Vorbis, MP3, AAC, M4A, WebM audio); %s is %s", name, ref.MIME)
		}
	} else if voice {
		return none, nil, errorf(api.KindInvalid, "%s is too large for a voice message", name)
	}
	ref.Info.Voice = voice
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return none, nil, fmt.Errorf("rewind %s: %w", path, err)
	}
	blob, err := m.importBytes(f)
	if err != nil {
		return none, nil, err
	}
	ref.CID, ref.ContentHash, ref.Key, ref.Size = blob.CID, blob.ContentHash, blob.Key, blob.Size
	return ref, thumb, nil
}

// importBytes stores r encrypted under a fresh key.
func (m *Media) importBytes(r io.Reader) (mimi.MediaRef, error) {
	key, err := media.NewFileKey(rand.Reader)
	if err != nil {
		return mimi.MediaRef{}, err
	}
	m.gcMu.RLock()
	b, err := media.Import(m.store, r, key)
	if err == nil {
		m.touch(b.Root)
	}
	m.gcMu.RUnlock()
	if err != nil {
		return mimi.MediaRef{}, fmt.Errorf("store file: %w", err)
	}
	return mimi.MediaRef{CID: b.Root.String(), ContentHash: append([]byte(nil), b.Hash[:]...), Key: key.Bytes(), Size: uint64(b.Size)}, nil
}

// SendFile authors a media message.
func (e *Engine) SendFile(ctx context.Context, room string, file mimi.MediaRef, thumb *mimi.MediaRef, caption string) (api.EventResp, error) {
	var cp *mimi.Part
	if caption != "" {
		if err := checkText(caption); err != nil {
			return api.EventResp{}, err
		}
		p := mimi.TextPart(caption)
		cp = &p
	}
	var resp api.EventResp
	err := e.do(ctx, func() error {
		id, rc, err := e.roomOf(room)
		if err != nil {
			return err
		}
		c, err := mimi.Attach(e.header(id), file, thumb, cp)
		if err != nil {
			return errorf(api.KindInvalid, "attach: %v", err)
		}
		ev, err := e.authorContent(id, rc, c)
		if err != nil {
			return err
		}
		resp.Event = ev.ID.String()
		return nil
	})
	return resp, err
}

// sendFile is the API method send-file: import, then author.
func (n *Node) sendFile(ctx context.Context, req api.SendFileReq) (api.SendFileResp, error) {
	if n.media == nil {
		return api.SendFileResp{}, errorf(api.KindUnavailable, "the media store is not open")
	}
	if _, err := crdt.ParseID(req.Room); err != nil {
		return api.SendFileResp{}, errorf(api.KindInvalid, "%q is not a room ID", req.Room)
	}
	if _, _, err := n.engine.roomOfChecked(ctx, req.Room); err != nil {
		return api.SendFileResp{}, err
	}
	if len(req.Waveform) > media.WaveformBuckets {
		return api.SendFileResp{}, errorf(api.KindInvalid, "a waveform has at most %d buckets, not %d", media.WaveformBuckets, len(req.Waveform))
	}
	file, thumb, err := n.media.attach(req.Path, req.Voice)
	if err != nil {
		return api.SendFileResp{}, err
	}
	// What the client measured fills in what the node could not read.
	if strings.HasPrefix(file.MIME, "audio/") || file.Info.Voice {
		if len(file.Info.Waveform) == 0 && len(req.Waveform) > 0 {
			file.Info.Waveform = req.Waveform
		}
		if file.Info.DurationMs == 0 {
			file.Info.DurationMs = req.DurationMS
		}
	}
	r, err := n.engine.SendFile(ctx, req.Room, file, thumb, req.Caption)
	if err != nil {
		return api.SendFileResp{}, err
	}
	return api.SendFileResp{Event: r.Event, CID: file.CID}, nil
}

// messageMedia is the JSON form of a message's first media part.
func messageMedia(ms []mimi.Media) *api.MessageMedia {
	if len(ms) == 0 {
		return nil
	}
	r := ms[0].Ref
	mm := &api.MessageMedia{CID: r.CID, MIME: r.MIME, Size: r.Size, Name: r.Name, Width: r.Info.Width, Height: r.Info.Height,
		DurationMS: r.Info.DurationMs, Waveform: r.Info.Waveform, Voice: r.Info.Voice}
	if k, err := media.FileKeyFromBytes(r.Key); err == nil {
		mm.Key = MediaKeyString(k)
	}
	if t := ms[0].Thumbnail; t != nil {
		mm.ThumbnailCID = t.CID
		if k, err := media.FileKeyFromBytes(t.Key); err == nil {
			mm.ThumbnailKey = MediaKeyString(k)
		}
	}
	return mm
}

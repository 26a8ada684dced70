package mediasvc

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/internal/clientfile"
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

// Attach imports the file at path (and, for an image, a thumbnail) and
// describes it for mimi.Attach.
func (m *Service) Attach(path string, voice bool) (mimi.MediaRef, *mimi.MediaRef, error) {
	var none mimi.MediaRef
	if !filepath.IsAbs(path) {
		return none, nil, errorf(api.KindInvalid, "file path %q is not absolute", path)
	}
	f, err := clientfile.OpenRegular(path)
	if err != nil {
		return none, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return none, nil, errorf(api.KindInvalid, "cannot read %s: %v", path, clientfile.UnwrapPathErr(err))
	}
	return m.AttachFrom(f, st.Size(), path, filepath.Base(path), voice)
}

// Source is what AttachFrom reads a file from: an open file, or the
// bytes of a file inside an export.
type Source interface {
	io.ReadSeeker
	io.ReaderAt
}

// AttachFrom imports the size bytes of f, the file name (shown as
// path in errors), as Attach does.
func (m *Service) AttachFrom(f Source, size int64, path, name string, voice bool) (mimi.MediaRef, *mimi.MediaRef, error) {
	var none mimi.MediaRef
	head := make([]byte, 512)
	k, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return none, nil, errorf(api.KindInvalid, "cannot read %s: %v", path, clientfile.UnwrapPathErr(err))
	}
	head = head[:k]
	ref := mimi.MediaRef{MIME: media.Sniff(head, name), Name: name}
	var data []byte // the whole file, where metadata needs it
	if size <= maxMetaRead {
		if data, err = io.ReadAll(io.NewSectionReader(f, 0, size)); err != nil {
			return none, nil, errorf(api.KindInvalid, "cannot read %s: %v", path, clientfile.UnwrapPathErr(err))
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
				t, err := m.ImportBytes(bytes.NewReader(jpg))
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
	blob, err := m.ImportBytes(f)
	if err != nil {
		return none, nil, err
	}
	ref.CID, ref.ContentHash, ref.Key, ref.Size = blob.CID, blob.ContentHash, blob.Key, blob.Size
	return ref, thumb, nil
}

// ImportBytes stores r encrypted under a fresh key.
func (m *Service) ImportBytes(r io.Reader) (mimi.MediaRef, error) {
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

package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/media/fsstore"
)

// mediaDir is the blob store's folder in the home.
const mediaDir = "media"

// registerMedia opens the blob store under HOME/media and binds the media
// methods. serveMedia runs the protocol.
func (n *Node) registerMedia(h host.Host) {
	store, err := fsstore.Open(filepath.Join(n.cfg.Home, mediaDir))
	if err != nil {
		n.mediaErr = fmt.Errorf("open media store: %w", err)
		Handle(n.api, api.EpRoomSet, n.engine.SetRoom) // serveMedia stops the node
		Handle(n.api, api.EpProfileSet, n.engine.ProfileSet)
		return
	}
	n.media = NewMedia(h, store, n.log)
	n.media.SetRelayPolicy(n.sharesRoom)
	Handle(n.api, api.EpMediaAdd, n.media.Add)
	Handle(n.api, api.EpMediaGet, n.mediaGet)
	Handle(n.api, api.EpMediaSave, n.mediaSave)
	Handle(n.api, api.EpMediaGC, n.mediaGC)
	// Avatars go into the media store (avatars.go).
	Handle(n.api, api.EpRoomSet, n.setRoom)
	Handle(n.api, api.EpProfileSet, n.setProfile)
}

// mediaGet is Media.Get, with the key, when none is given, from a message
// that refers to the blob.
func (n *Node) mediaGet(ctx context.Context, req api.MediaGetReq) (api.MediaGetResp, error) {
	if req.Key == "" {
		key, err := n.engine.mediaKey(ctx, req.CID)
		if err != nil {
			return api.MediaGetResp{}, err
		}
		req.Key = key
	}
	return n.media.Get(ctx, req)
}

// mediaSave writes the file of a media message, decrypted with the key the
// message carries.
func (n *Node) mediaSave(ctx context.Context, req api.MediaSaveReq) (api.MediaSaveResp, error) {
	mm, err := n.engine.messageFile(ctx, req.Room, req.Event)
	if err != nil {
		return api.MediaSaveResp{}, err
	}
	out := req.Out
	if out == "" {
		dir, err := absPath(req.Dir, "folder to save into")
		if err != nil {
			return api.MediaSaveResp{}, err
		}
		out = filepath.Join(dir, saveName(mm.Name))
		if _, err := os.Lstat(out); err == nil {
			return api.MediaSaveResp{}, errorf(api.KindInvalid, "%s exists (name another file with -o FILE)", out)
		}
	}
	r, err := n.media.Get(ctx, api.MediaGetReq{CID: mm.CID, Key: mm.Key, Out: out})
	if err != nil {
		return api.MediaSaveResp{}, err
	}
	return api.MediaSaveResp{CID: r.CID, Size: r.Size, Path: out}, nil
}

// saveName makes the name a sender gave a file safe as a file name in a
// folder: no folders, no leading dot, no control characters.
func saveName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(filepath.Base(name), ".")
	if name == "" || name == "/" {
		return "file"
	}
	return name
}

// serveMedia runs the component registerMedia made until ctx is done.
func (n *Node) serveMedia(ctx context.Context) error {
	if n.media == nil {
		return errors.Join(errors.New("media: not registered"), n.mediaErr)
	}
	t := time.NewTicker(mediaGCEvery)
	defer t.Stop()
	done := make(chan error, 1)
	go func() { done <- n.keepMedia(ctx, t.C) }()
	err := n.media.Serve(ctx)
	return errors.Join(err, <-done)
}

// Add encrypts the file at req.Path with a fresh random key into the store.
func (m *Media) Add(ctx context.Context, req api.MediaAddReq) (api.MediaAddResp, error) {
	if !filepath.IsAbs(req.Path) {
		return api.MediaAddResp{}, errorf(api.KindInvalid, "media path %q is not absolute", req.Path)
	}
	f, err := openRegular(req.Path)
	if err != nil {
		return api.MediaAddResp{}, err
	}
	defer f.Close()
	head := make([]byte, 512)
	k, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return api.MediaAddResp{}, errorf(api.KindInvalid, "cannot read %s: %v", req.Path, unwrapPathErr(err))
	}
	head = head[:k]
	key, err := media.NewFileKey(rand.Reader)
	if err != nil {
		return api.MediaAddResp{}, err
	}
	m.gcMu.RLock()
	blob, err := media.Import(m.store, io.MultiReader(bytes.NewReader(head), f), key)
	if err == nil {
		m.touch(blob.Root)
	}
	m.gcMu.RUnlock()
	if err != nil {
		return api.MediaAddResp{}, fmt.Errorf("store %s: %w", req.Path, err)
	}
	return api.MediaAddResp{CID: blob.Root.String(), Size: blob.Size, MIME: media.Sniff(head, filepath.Base(req.Path)), Key: MediaKeyString(key)}, nil
}

// Get fetches the blob req.CID if needed and decrypts it into req.Out. The
// two overlap: blocks are decrypted and written out in order as the fetch
// stores them (each read back from the store is verified again), so the
// file is ready about when its last block arrives. A decryption error (a
// wrong key) stops the fetch; what was fetched stays for a later Get.
func (m *Media) Get(ctx context.Context, req api.MediaGetReq) (api.MediaGetResp, error) {
	root, err := cid.Decode(req.CID)
	if err == nil {
		_, err = parseMediaCID(root.Bytes())
	}
	if err != nil {
		return api.MediaGetResp{}, errorf(api.KindInvalid, "%q is not a media CID", req.CID)
	}
	key, err := ParseMediaKey(req.Key)
	if err != nil {
		return api.MediaGetResp{}, err
	}
	if !filepath.IsAbs(req.Out) {
		return api.MediaGetResp{}, errorf(api.KindInvalid, "output path %q is not absolute", req.Out)
	}
	if err := checkOutput(req.Out); err != nil {
		return api.MediaGetResp{}, err
	}
	// No collection while the blob is fetched and read (media_gc.go).
	m.gcMu.RLock()
	defer m.gcMu.RUnlock()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	arriving := m.awaitFetch()
	fetched := make(chan error, 1)
	go func() {
		err := m.fetch(fctx, root)
		arriving.end(err)
		fetched <- err
	}()
	n, werr := m.writeOut(arriving, root, key, req.Out)
	if werr != nil {
		cancel() // e.g. a wrong key: stop fetching
	}
	ferr := <-fetched
	switch {
	case werr == nil: // every block read, verified and decrypted
		return api.MediaGetResp{CID: root.String(), Size: n}, nil
	case ctx.Err() != nil:
		return api.MediaGetResp{}, ErrClosed
	case !errors.Is(werr, errFetchEnded) || ferr == nil:
		return api.MediaGetResp{}, werr
	case errors.Is(ferr, ErrMediaNotFound):
		return api.MediaGetResp{}, &api.Error{Kind: api.KindNotFound, Msg: fmt.Sprintf("media %s is not held here or by any connected peer", req.CID), Err: ferr}
	}
	return api.MediaGetResp{}, fmt.Errorf("fetch %s: %w", req.CID, ferr)
}

// writeOut decrypts the blob root, read from store, into out through a
// temporary file in the same folder, synced and renamed into place. The
// file is private to the user (0600): it is the plaintext of an encrypted
// message.
func (m *Media) writeOut(store media.BlobStore, root cid.Cid, key media.FileKey, out string) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".parley-media-*")
	if err != nil {
		return 0, errorf(api.KindInvalid, "cannot write into %s: %v", filepath.Dir(out), unwrapPathErr(err))
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	r, err := media.NewReader(store, root, key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", root, err)
	}
	n, err := io.CopyBuffer(onlyWriter{tmp}, r, make([]byte, media.ChunkSize))
	switch {
	case errors.Is(err, media.ErrDecrypt):
		return 0, errorf(api.KindInvalid, "cannot decrypt %s: wrong key (or a corrupt blob)", root)
	case errors.Is(err, errFetchEnded):
		return 0, err
	case err != nil:
		return 0, fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("write %s: %w", out, err)
	}
	if err := checkOutput(out); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return 0, errorf(api.KindInvalid, "cannot write %s: %v", out, unwrapPathErr(err))
	}
	done = true
	return n, nil
}

// onlyWriter hides *os.File's ReaderFrom, so that io.CopyBuffer uses the
// chunk-sized buffer.
type onlyWriter struct{ io.Writer }

// unwrapPathErr drops the path an *os.PathError repeats.
func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

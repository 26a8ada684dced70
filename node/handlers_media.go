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

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"

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
		return
	}
	n.media = NewMedia(h, store, n.log)
	Handle(n.api, MethodMediaAdd, n.media.Add)
	Handle(n.api, MethodMediaGet, n.media.Get)
}

// serveMedia runs the component registerMedia made until ctx is done.
func (n *Node) serveMedia(ctx context.Context) error {
	if n.media == nil {
		return errors.Join(errors.New("media: not registered"), n.mediaErr)
	}
	return n.media.Serve(ctx)
}

// Add encrypts the file at req.Path with a fresh random key into the store.
func (m *Media) Add(ctx context.Context, req MediaAddReq) (MediaAddResp, error) {
	if !filepath.IsAbs(req.Path) {
		return MediaAddResp{}, errorf(KindInvalid, "media path %q is not absolute", req.Path)
	}
	f, err := os.Open(req.Path)
	if err != nil {
		return MediaAddResp{}, errorf(KindInvalid, "cannot read %s: %v", req.Path, unwrapPathErr(err))
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return MediaAddResp{}, errorf(KindInvalid, "%s is not a regular file", req.Path)
	}
	head := make([]byte, 512)
	k, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return MediaAddResp{}, errorf(KindInvalid, "cannot read %s: %v", req.Path, unwrapPathErr(err))
	}
	head = head[:k]
	key, err := media.NewFileKey(rand.Reader)
	if err != nil {
		return MediaAddResp{}, err
	}
	blob, err := media.Import(m.store, io.MultiReader(bytes.NewReader(head), f), key)
	if err != nil {
		return MediaAddResp{}, fmt.Errorf("store %s: %w", req.Path, err)
	}
	return MediaAddResp{CID: blob.Root.String(), Size: blob.Size, MIME: media.Sniff(head, filepath.Base(req.Path)), Key: MediaKeyString(key)}, nil
}

// Get fetches the blob req.CID if needed, then decrypts it into req.Out.
func (m *Media) Get(ctx context.Context, req MediaGetReq) (MediaGetResp, error) {
	root, err := cid.Decode(req.CID)
	if err == nil {
		_, err = parseMediaCID(root.Bytes())
	}
	if err != nil {
		return MediaGetResp{}, errorf(KindInvalid, "%q is not a media CID", req.CID)
	}
	key, err := ParseMediaKey(req.Key)
	if err != nil {
		return MediaGetResp{}, err
	}
	if !filepath.IsAbs(req.Out) {
		return MediaGetResp{}, errorf(KindInvalid, "output path %q is not absolute", req.Out)
	}
	if err := m.Fetch(ctx, root); err != nil {
		switch {
		case errors.Is(err, ErrMediaNotFound):
			return MediaGetResp{}, &Error{Kind: KindNotFound, Msg: fmt.Sprintf("media %s is not held here or by any connected peer", req.CID), Err: err}
		case ctx.Err() != nil:
			return MediaGetResp{}, ErrClosed
		}
		return MediaGetResp{}, fmt.Errorf("fetch %s: %w", req.CID, err)
	}
	n, err := m.writeOut(root, key, req.Out)
	if err != nil {
		return MediaGetResp{}, err
	}
	return MediaGetResp{CID: root.String(), Size: n}, nil
}

// writeOut decrypts the complete blob root into out through a temporary
// file in the same folder, synced and renamed into place. The file is
// private to the user (0600): it is the plaintext of an encrypted message.
func (m *Media) writeOut(root cid.Cid, key media.FileKey, out string) (int64, error) {
	r, err := media.NewReader(m.store, root, key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", root, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".parley-media-*")
	if err != nil {
		return 0, errorf(KindInvalid, "cannot write into %s: %v", filepath.Dir(out), unwrapPathErr(err))
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.CopyBuffer(tmp, r, make([]byte, 64<<10))
	switch {
	case errors.Is(err, media.ErrDecrypt):
		return 0, errorf(KindInvalid, "cannot decrypt %s: wrong key (or a corrupt blob)", root)
	case err != nil:
		return 0, fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return 0, errorf(KindInvalid, "cannot write %s: %v", out, unwrapPathErr(err))
	}
	done = true
	return n, nil
}

// unwrapPathErr drops the path an *os.PathError repeats.
func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

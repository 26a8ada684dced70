package mediasvc

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

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/internal/clientfile"
)

// Add encrypts the file at req.Path with a fresh random key into the store.
func (m *Service) Add(ctx context.Context, req api.MediaAddReq) (api.MediaAddResp, error) {
	if !filepath.IsAbs(req.Path) {
		return api.MediaAddResp{}, errorf(api.KindInvalid, "media path %q is not absolute", req.Path)
	}
	f, err := clientfile.OpenRegular(req.Path)
	if err != nil {
		return api.MediaAddResp{}, err
	}
	defer f.Close()
	head := make([]byte, 512)
	k, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return api.MediaAddResp{}, errorf(api.KindInvalid, "cannot read %s: %v", req.Path, clientfile.UnwrapPathErr(err))
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
	return api.MediaAddResp{CID: blob.Root.String(), Size: blob.Size, MIME: media.Sniff(head, filepath.Base(req.Path)), Key: KeyString(key)}, nil
}

// Get fetches the blob req.CID if needed and decrypts it into req.Out. The
// two overlap: blocks are decrypted and written out in order as the fetch
// stores them (each read back from the store is verified again), so the
// file is ready about when its last block arrives. A decryption error (a
// wrong key) stops the fetch; what was fetched stays for a later Get.
func (m *Service) Get(ctx context.Context, req api.MediaGetReq, p Progress) (api.MediaGetResp, error) {
	root, err := cid.Decode(req.CID)
	if err == nil {
		_, err = parseMediaCID(root.Bytes())
	}
	if err != nil {
		return api.MediaGetResp{}, errorf(api.KindInvalid, "%q is not a media CID", req.CID)
	}
	key, err := ParseKey(req.Key)
	if err != nil {
		return api.MediaGetResp{}, err
	}
	if !filepath.IsAbs(req.Out) {
		return api.MediaGetResp{}, errorf(api.KindInvalid, "output path %q is not absolute", req.Out)
	}
	if err := clientfile.CheckOutput(req.Out); err != nil {
		return api.MediaGetResp{}, err
	}
	// No collection while the blob is fetched and read (gc.go).
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
	n, werr := m.writeOut(arriving, root, key, req.Out, p)
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
	case errors.Is(ferr, ErrNotFound):
		return api.MediaGetResp{}, &api.Error{Kind: api.KindNotFound, Msg: fmt.Sprintf("media %s is not held here or by any connected peer", req.CID), Err: ferr}
	}
	return api.MediaGetResp{}, fmt.Errorf("fetch %s: %w", req.CID, ferr)
}

// writeOut decrypts the blob root, read from store, into out through a
// temporary file in the same folder, synced and renamed into place. The
// file is private to the user (0600): it is the plaintext of an encrypted
// message.
func (m *Service) writeOut(store media.BlobStore, root cid.Cid, key media.FileKey, out string, p Progress) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".parley-media-*")
	if err != nil {
		return 0, errorf(api.KindInvalid, "cannot write into %s: %v", filepath.Dir(out), clientfile.UnwrapPathErr(err))
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
	var w io.Writer = onlyWriter{tmp}
	if p != nil {
		total, err := media.Size(store, root) // the root is held: NewReader read it
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", root, err)
		}
		p.Set(0, total)
		w = &progressWriter{w: w, p: p, total: total}
	}
	n, err := io.CopyBuffer(w, r, make([]byte, media.ChunkSize))
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
	if err := clientfile.CheckOutput(out); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return 0, errorf(api.KindInvalid, "cannot write %s: %v", out, clientfile.UnwrapPathErr(err))
	}
	done = true
	return n, nil
}

// onlyWriter hides *os.File's ReaderFrom, so that io.CopyBuffer uses the
// chunk-sized buffer.
type onlyWriter struct{ io.Writer }

// Progress receives how far a Get has come: plaintext octets written of
// the file's size.
type Progress interface{ Set(done, total int64) }

// progressWriter reports every write to a Progress.
type progressWriter struct {
	w     io.Writer
	p     Progress
	total int64
	n     int64
}

func (pw *progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.n += int64(n)
	pw.p.Set(pw.n, pw.total)
	return n, err
}

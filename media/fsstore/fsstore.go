// Package fsstore is a media.BlobStore on the file system: one file per
// block, named by its CID, under a two-letter fan-out directory. Writes
// are atomic (a temporary file, fsync, rename), so a crash leaves a block
// either whole or absent; reads are verified against the CID.
package fsstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/parley-p2p/parley/media"
)

const tmpPrefix = ".tmp-"

// Store keeps blocks under a directory.
type Store struct {
	dir string
}

// Open returns a store in dir, creating the directory if needed, and
// removes the temporary files of writes a crash interrupted. Only one
// Store may use a directory at a time.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fsstore: %w", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*", tmpPrefix+"*"))
	for _, p := range tmps {
		_ = os.Remove(p)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(c cid.Cid) string {
	name := c.String()
	return filepath.Join(s.dir, name[len(name)-2:], name)
}

// Put implements media.BlobStore.
func (s *Store) Put(c cid.Cid, data []byte) error {
	if err := media.VerifyBlock(c, data); err != nil {
		return err
	}
	p := s.path(c)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("fsstore: %w", err)
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("fsstore: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, p)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("fsstore: put %s: %w", c, werr)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Get implements media.BlobStore.
func (s *Store) Get(c cid.Cid) ([]byte, error) {
	if err := media.VerifyBlock(c, nil); errors.Is(err, media.ErrBadCID) {
		return nil, err
	}
	data, err := os.ReadFile(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, media.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("fsstore: get %s: %w", c, err)
	}
	if err := media.VerifyBlock(c, data); err != nil {
		return nil, fmt.Errorf("%w: %s", media.ErrCorrupt, c)
	}
	return data, nil
}

// Has implements media.BlobStore.
func (s *Store) Has(c cid.Cid) (bool, error) {
	if !c.Defined() {
		return false, media.ErrBadCID
	}
	_, err := os.Stat(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Delete implements media.BlobStore.
func (s *Store) Delete(c cid.Cid) error {
	if !c.Defined() {
		return media.ErrBadCID
	}
	err := os.Remove(s.path(c))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fsstore: delete %s: %w", c, err)
	}
	return nil
}

// List implements media.BlobStore. Temporary files of writes in progress
// are skipped.
func (s *Store) List(fn func(cid.Cid) bool) error {
	dirs, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("fsstore: %w", err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(s.dir, d.Name()))
		if err != nil {
			return fmt.Errorf("fsstore: %w", err)
		}
		for _, f := range files {
			if strings.HasPrefix(f.Name(), tmpPrefix) {
				continue // a write in progress, or one a crash interrupted
			}
			c, err := cid.Decode(f.Name())
			if err != nil {
				continue // not ours
			}
			if !fn(c) {
				return nil
			}
		}
	}
	return nil
}

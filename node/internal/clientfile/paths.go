// Package clientfile opens and writes the files a client names by path
// (media add, send-file, avatars, import; media get, media save, export),
// so that such a path does no more than the client asked. It must not
// follow a symlink on output, open a FIFO or device, or know what the
// files hold.
package clientfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/parley-p2p/parley/api"
)

// The daemon reads and writes files the client names by path (media add,
// send-file, avatars, import; media get, media save, export). These
// helpers keep such a path from doing more than the client asked: a FIFO or
// device is never opened for reading (opening a FIFO blocks until a writer
// comes), and an output never replaces anything but a regular file.

// OpenRegular opens path for reading if it is a regular file (a symlink to
// one is fine). It checks before opening, then opens without blocking and
// checks the open file again, so a FIFO put in its place in between cannot
// hang the request.
func OpenRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, errorf(api.KindInvalid, "cannot read %s: %v", path, UnwrapPathErr(err))
	}
	if !st.Mode().IsRegular() {
		return nil, errorf(api.KindInvalid, "%s is not a regular file", path)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, errorf(api.KindInvalid, "cannot read %s: %v", path, UnwrapPathErr(err))
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, errorf(api.KindInvalid, "%s is not a regular file", path)
	}
	return f, nil
}

// CheckOutput refuses an output path that exists and is not a regular file:
// a symlink (never followed, never replaced), a FIFO, a device, a folder.
// Outputs are written to a fresh temporary file and renamed over path,
// which would turn any of these into a regular file.
func CheckOutput(path string) error {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return errorf(api.KindInvalid, "cannot write %s: %v", path, UnwrapPathErr(err))
	case !st.Mode().IsRegular():
		return errorf(api.KindInvalid, "%s is not a regular file (refusing to replace it)", path)
	}
	return nil
}

// UnwrapPathErr drops the path an *os.PathError repeats.
func UnwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func errorf(k api.Kind, format string, args ...any) error {
	return &api.Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

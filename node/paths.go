package node

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"github.com/parley-p2p/parley/api"
)

// The daemon reads and writes files the client names by path (media add,
// send-file, avatars, import; media get, media save, export). These two
// helpers keep such a path from doing more than the client asked: a FIFO or
// device is never opened for reading (opening a FIFO blocks until a writer
// comes), and an output never replaces anything but a regular file.

// openRegular opens path for reading if it is a regular file (a symlink to
// one is fine). It checks before opening, then opens without blocking and
// checks the open file again, so a FIFO put in its place in between cannot
// hang the request.
func openRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, errorf(api.KindInvalid, "cannot read %s: %v", path, pathErrText(err))
	}
	if !st.Mode().IsRegular() {
		return nil, errorf(api.KindInvalid, "%s is not a regular file", path)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, errorf(api.KindInvalid, "cannot read %s: %v", path, pathErrText(err))
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, errorf(api.KindInvalid, "%s is not a regular file", path)
	}
	return f, nil
}

// checkOutput refuses an output path that exists and is not a regular file:
// a symlink (never followed, never replaced), a FIFO, a device, a folder.
// Outputs are written to a fresh temporary file and renamed over path,
// which would turn any of these into a regular file.
func checkOutput(path string) error {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return errorf(api.KindInvalid, "cannot write %s: %v", path, pathErrText(err))
	case !st.Mode().IsRegular():
		return errorf(api.KindInvalid, "%s is not a regular file (refusing to replace it)", path)
	}
	return nil
}

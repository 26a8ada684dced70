//go:build !unix

package node

import (
	"errors"
	"io/fs"
)

func diskUsage(info fs.FileInfo) int64 { return info.Size() }

// freeSpace is unknown here: the disk guard lets every write through.
func freeSpace(string) (uint64, error) { return 0, errors.ErrUnsupported }

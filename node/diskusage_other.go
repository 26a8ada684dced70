//go:build !unix

package node

import "io/fs"

func diskUsage(info fs.FileInfo) int64 { return info.Size() }

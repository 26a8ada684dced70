//go:build !linux

package p2p

// threadCPU is unknown on this platform: -1 (junk CPU is not measured).
func threadCPU() int64 { return -1 }

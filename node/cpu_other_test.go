//go:build !unix

package node

// processCPU is unknown on this platform: -1.
func processCPU() float64 { return -1 }

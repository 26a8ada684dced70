//go:build !linux

package simulations

import (
	"context"
	"errors"
	"io"
)

// NetnsOptions configure RunNetns.
type NetnsOptions struct {
	Nodes    int
	Seed     uint64
	Out      string
	Progress io.Writer
	Binary   string
}

// NetnsAvailable says why the netns backend cannot run here: it needs Linux.
func NetnsAvailable() error { return errors.New("the netns backend needs Linux") }

// RunNetns needs Linux network namespaces.
func RunNetns(context.Context, *Scenario, NetnsOptions) (*Report, error) {
	return nil, NetnsAvailable()
}

package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/node/p2p"
)

// registerDevices binds the device and verification methods and serves the
// link protocol on h.
func (n *Node) registerDevices(h host.Host) {
	s, e := n.api, n.engine
	master, err := loadMaster(n.cfg.Home)
	if err != nil {
		n.log.Warn("device linking unavailable", "err", err)
	}
	linker := p2p.NewLinker(h, e, master, n.log)
	Handle(s, api.EpVerify, e.Verify)
	Handle(s, api.EpDeviceList, e.DeviceList)
	Handle(s, api.EpDeviceRevoke, e.Revoke)
	Handle(s, api.EpDeviceLink, func(ctx context.Context, _ api.Empty) (api.DeviceLinkResp, error) {
		c, err := newLinkCode(linker, 0)
		if err != nil {
			return api.DeviceLinkResp{}, err
		}
		return api.DeviceLinkResp{Code: c.Encode(), ExpiresMS: c.Expires.UnixMilli()}, nil
	})
}

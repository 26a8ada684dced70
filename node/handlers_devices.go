package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/host"
)

// registerDevices binds the device and verification methods and serves the
// link protocol on h.
func (n *Node) registerDevices(h host.Host) {
	s, e := n.api, n.engine
	master, err := loadMaster(n.cfg.Home)
	if err != nil {
		n.log.Warn("device linking unavailable", "err", err)
	}
	linker := NewLinker(h, e, master, n.log)
	Handle(s, EpVerify, e.Verify)
	Handle(s, EpDeviceList, e.DeviceList)
	Handle(s, EpDeviceRevoke, e.Revoke)
	Handle(s, EpDeviceLink, func(ctx context.Context, _ Empty) (DeviceLinkResp, error) {
		c, err := linker.NewCode(0)
		if err != nil {
			return DeviceLinkResp{}, err
		}
		return DeviceLinkResp{Code: c.Encode(), ExpiresMS: c.Expires.UnixMilli()}, nil
	})
}

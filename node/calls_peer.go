package node

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/calls"
	"github.com/parley-p2p/parley/crdt"
	"github.com/pion/webrtc/v4"
)

// callPeers runs the daemon's own WebRTC peers (package calls), at most
// one per room: call.dial starts one, call.hangup and the daemon's end stop
// it. Signals addressed to this device and call events reach a peer
// through a watcher of its room.
type callPeers struct {
	e        *Engine
	eph      *Ephemeral
	log      *slog.Logger
	loopback func() bool // ICE on loopback only: the node listens only there
	// ice answers call.ice_servers (turn_node.go): this node's STUN and the
	// TURN relays of the room's members that run one.
	ice func(context.Context, api.CallICEServersReq) (api.CallICEServersResp, error)

	mu     sync.Mutex
	ctx    context.Context // the daemon's; nil until Serve
	byRoom map[crdt.RoomID]*dialed
	wg     sync.WaitGroup
}

type dialed struct {
	call   string
	peer   *calls.Call
	cancel context.CancelFunc
	done   chan struct{}
}

// iceServers are the STUN and TURN servers for a call in room, asked of the
// room's members for at most 3 s (a slow member must not hold the call up;
// on a failure the peer goes on with host candidates, as on loopback).
func (cp *callPeers) iceServers(ctx context.Context, room crdt.RoomID) []webrtc.ICEServer {
	if cp.ice == nil || cp.loopback() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r, err := cp.ice(ctx, api.CallICEServersReq{Room: room.String()})
	if err != nil {
		cp.log.Debug("ice servers", "room", room.String(), "err", err)
		return nil
	}
	out := make([]webrtc.ICEServer, 0, len(r.ICEServers))
	for _, s := range r.ICEServers {
		out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}

// Serve holds the daemon's lifetime for the peers; when it ends, every
// peer hangs up and leaves its call.
func (cp *callPeers) Serve(ctx context.Context) error {
	cp.mu.Lock()
	cp.ctx = ctx
	cp.mu.Unlock()
	<-ctx.Done()
	cp.mu.Lock()
	rooms := make([]crdt.RoomID, 0, len(cp.byRoom))
	for r := range cp.byRoom {
		rooms = append(rooms, r)
	}
	cp.mu.Unlock()
	for _, r := range rooms {
		bye, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := cp.hangup(bye, r); err != nil {
			cp.log.Debug("hang up at exit", "room", r, "err", err)
		}
		cancel()
	}
	cp.wg.Wait()
	return nil
}

// signaller sends a peer's signals as sealed call signals of its room.
type signaller struct {
	cp   *callPeers
	room crdt.RoomID
	call string
}

func (s signaller) Signal(ctx context.Context, to calls.Device, op, sdp, cand string) error {
	return publishCallSignal(ctx, s.cp.e, s.cp.eph, api.CallSignalReq{Room: s.room.String(), Call: s.call, ToUser: to.User, ToDevice: to.Device, Op: op, SDP: sdp, Candidate: cand})
}

// dial starts or joins the room's call with the daemon's peer.
func (cp *callPeers) dial(ctx context.Context, req api.CallDialReq) (api.CallResp, error) {
	for _, p := range []struct{ what, path string }{{"send", req.Send}, {"send_video", req.SendVideo}, {"record", req.Record}} {
		if p.path != "" && !filepath.IsAbs(p.path) {
			return api.CallResp{}, errorf(api.KindInvalid, "%s path must be absolute: %s", p.what, p.path)
		}
	}
	if req.Record != "" {
		if st, err := os.Stat(req.Record); err != nil || !st.IsDir() {
			return api.CallResp{}, errorf(api.KindInvalid, "record directory %s does not exist", req.Record)
		}
	}
	if req.Send != "" {
		if st, err := os.Stat(req.Send); err != nil || !st.Mode().IsRegular() {
			return api.CallResp{}, errorf(api.KindInvalid, "cannot read the audio file %s", req.Send)
		}
	}
	if req.SendVideo != "" {
		if !req.Video {
			return api.CallResp{}, errorf(api.KindInvalid, "send_video needs a video call (video: true)")
		}
		if st, err := os.Stat(req.SendVideo); err != nil || !st.Mode().IsRegular() {
			return api.CallResp{}, errorf(api.KindInvalid, "cannot read the video file %s", req.SendVideo)
		}
	}
	room, _, err := cp.e.roomOfChecked(ctx, req.Room)
	if err != nil {
		return api.CallResp{}, err
	}
	cp.mu.Lock()
	life := cp.ctx
	busy := cp.byRoom[room] != nil
	cp.mu.Unlock()
	if life == nil {
		return api.CallResp{}, errorf(api.KindUnavailable, "the daemon is starting; try again")
	}
	if busy {
		return api.CallResp{}, errInCall()
	}
	self := calls.Device{User: cp.e.ident.User.String(), Device: cp.e.ident.Device.Public().String()}
	peerCtx, cancel := context.WithCancel(life)
	// Watch before joining, so no answer is missed.
	items, stopWatch, err := cp.e.Watch(peerCtx, room.String())
	if err != nil {
		cancel()
		return api.CallResp{}, err
	}
	sig := &signaller{cp: cp, room: room}
	peer, err := calls.New(calls.Config{Self: self, Signaller: sig, Send: req.Send, SendVideo: req.SendVideo, Record: req.Record, Video: req.Video, Loopback: cp.loopback(), ICEServers: cp.iceServers(ctx, room), Log: cp.log.With("room", room.String())})
	if err != nil {
		stopWatch()
		cancel()
		if errors.Is(err, calls.ErrAudio) || errors.Is(err, calls.ErrVideo) {
			return api.CallResp{}, errorf(api.KindInvalid, "%v", err)
		}
		return api.CallResp{}, err
	}
	c, err := cp.e.callStart(ctx, api.CallStartReq{Room: room.String(), Video: req.Video}, true)
	if err != nil {
		stopWatch()
		cancel()
		return api.CallResp{}, err
	}
	sig.call = c.Call
	d := &dialed{call: c.Call, peer: peer, cancel: cancel, done: make(chan struct{})}
	cp.mu.Lock()
	if cp.byRoom == nil {
		cp.byRoom = map[crdt.RoomID]*dialed{}
	}
	cp.byRoom[room] = d
	cp.mu.Unlock()
	cs, err := cp.e.Calls(ctx, api.RoomReq{Room: room.String()})
	if err == nil {
		for _, ci := range cs.Calls {
			if ci.Call != c.Call {
				continue
			}
			var in []calls.Device
			for _, p := range ci.Participants {
				in = append(in, calls.Device{User: p.User, Device: p.Device})
			}
			peer.Join(in)
		}
	}
	cp.wg.Add(2)
	go func() {
		defer cp.wg.Done()
		defer close(d.done)
		if err := peer.Serve(peerCtx); err != nil {
			cp.log.Warn("call peer", "room", room, "err", err)
		}
	}()
	go func() {
		defer cp.wg.Done()
		defer stopWatch()
		cp.route(peerCtx, room, c.Call, peer, items)
	}()
	return c, nil
}

// route hands the peer the signals of its call addressed to this device
// and the leaves of other participants.
func (cp *callPeers) route(ctx context.Context, room crdt.RoomID, call string, peer *calls.Call, items <-chan api.WatchItem) {
	for {
		select {
		case <-ctx.Done():
			return
		case it, ok := <-items:
			if !ok {
				// The watcher fell behind: watch again.
				var err error
				if items, _, err = cp.e.Watch(ctx, room.String()); err != nil {
					return
				}
				continue
			}
			switch {
			case it.CallSignal != nil && it.CallSignal.Call == call:
				s := it.CallSignal
				peer.Receive(calls.Signal{From: calls.Device{User: s.FromUser, Device: s.FromDevice}, Op: s.Op, SDP: s.SDP, Candidate: s.Candidate})
			case it.Event != nil && it.Event.Call != nil && it.Event.Call.Call == call && it.Event.Call.Action == api.CallLeave:
				peer.Drop(calls.Device{User: it.Event.Sender, Device: it.Event.Call.Device})
			}
		}
	}
}

// hangup stops the room's peer and leaves its call.
func (cp *callPeers) hangup(ctx context.Context, room crdt.RoomID) error {
	cp.mu.Lock()
	d := cp.byRoom[room]
	delete(cp.byRoom, room)
	cp.mu.Unlock()
	if d == nil {
		return errorf(api.KindNotFound, "this daemon is in no call in room %s", room)
	}
	d.cancel()
	<-d.done
	_, err := cp.e.CallLeave(ctx, api.CallReq{Room: room.String(), Call: d.call})
	return err
}

package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/internal/mailbox"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// Ephemeral signals (docs/protocol.md §6.4): typing notifications and
// presence travel over a per-room pubsub topic and are never stored in the
// DAG. Each is signed by the sending device (with its device certificate)
// and, in an encrypted room, sealed under an epoch of the room. Receivers
// drop signals from non-members, blocked users, with a stale timestamp, or
// that they cannot open.

// Presence values.
const (
	PresenceOnline  = "online"
	PresenceAway    = "away"
	PresenceOffline = "offline"
)

const (
	// TypingTTL is how long a typing notification lasts without renewal.
	TypingTTL = 30 * time.Second
	// signalSkew is how far a signal's timestamp may be from the
	// receiver's clock.
	signalSkew = 2 * time.Minute
	// ephType is the type in the AAD a sealed signal is bound to; no event
	// can carry it (event AADs name an event type and position).
	ephType = "parley/v1/ephemeral"
	// ephSigLabel prefixes what a device signs.
	ephSigLabel = "parley/v1/ephemeral-sig"
	// presenceEvery is how often a set presence is repeated.
	presenceEvery = time.Minute
	// maxSignal bounds a signal on the wire (a call offer carries an SDP).
	maxSignal = 16 << 10
)

// ephWire is a signal on the wire (canonical CBOR).
type ephWire struct {
	Room   []byte `cbor:"room"` // the room's reference (RoomRef), not its id
	User   []byte `cbor:"user"`
	Device []byte `cbor:"device"`
	Cert   []byte `cbor:"cert"`
	TS     int64  `cbor:"ts"`
	Epoch  []byte `cbor:"epoch,omitempty"` // encrypted rooms: the epoch Body is sealed under
	Body   []byte `cbor:"body"`            // ephBody, maybe sealed
	Sig    []byte `cbor:"sig,omitempty"`   // device signature of ephSigLabel ‖ the encoding without sig
}

// ephBody is what a signal says.
type ephBody struct {
	Kind       string   `cbor:"kind"` // "typing", "presence" or "call"
	Typing     bool     `cbor:"typing,omitempty"`
	Presence   string   `cbor:"presence,omitempty"`
	LastActive int64    `cbor:"last_active,omitempty"` // ms
	CallBox    *callBox `cbor:"call_box,omitempty"`    // kind "call" (calls.go)
}

// ephState is the engine's ephemeral bookkeeping (owned by its goroutine).
type ephState struct {
	presence   map[crdt.UserID]api.PresenceResp // last heard, by signal time
	lastActive int64                            // this user's last action, ms
	// typing holds, per room and user typing now, a token that the latest
	// typing signal set; its lapse timer ends the typing only if no later
	// signal replaced the token.
	typing map[typingKey]uint64
	tokens uint64
	ttl    time.Duration // 0: TypingTTL (tests shorten it)
}

type typingKey struct {
	room crdt.RoomID
	user crdt.UserID
}

func (e *Engine) touch() { e.eph.lastActive = e.now().UnixMilli() }

// seal signs (and in an encrypted room seals) a signal for room.
func (e *Engine) seal(room crdt.RoomID, rc *roomCtl, b ephBody) ([]byte, error) {
	if rc.room == nil || rc.room.MembershipOf(e.ident.User) != rooms.Join {
		return nil, errorf(api.KindPermission, "you are not a member of room %s", room)
	}
	dev := e.ident.Device.Public()
	ref := p2p.RefOf(room)
	w := ephWire{Room: ref[:], User: e.ident.User[:], Device: dev[:], Cert: e.ident.Cert, TS: e.now().UnixMilli(), Body: rooms.Encode(b)}
	if rc.room.Encrypted() {
		var k *e2ee.EpochKey
		for _, ep := range rc.room.AdmissibleEpochs(nil) {
			if k = e.kr.held(room, ep.ID); k != nil {
				break
			}
		}
		if k == nil {
			return nil, errorf(api.KindUnavailable, "no key for room %s yet; try again once it synced", room)
		}
		id := k.ID()
		sealed, err := k.Seal(e.kr.rand, ephHeader(room, e.ident.User, dev, w.TS, id), w.Body)
		if err != nil {
			return nil, fmt.Errorf("seal signal: %w", err)
		}
		w.Epoch, w.Body = id[:], sealed
	}
	w.Sig = e.ident.Device.Sign(append([]byte(ephSigLabel), rooms.Encode(w)...))
	return rooms.Encode(w), nil
}

func ephHeader(room crdt.RoomID, u crdt.UserID, d crdt.DeviceID, ts int64, ep e2ee.EpochID) e2ee.Header {
	return e2ee.Header{Room: room, Type: ephType, User: u, Device: d, TS: ts, Epoch: ep}
}

// Typing builds this user's typing signal for a room.
func (e *Engine) Typing(ctx context.Context, req api.TypingReq) (crdt.RoomID, []byte, error) {
	var id crdt.RoomID
	var data []byte
	err := e.do(ctx, func() error {
		var rc *roomCtl
		var err error
		if id, rc, err = e.roomOf(req.Room); err != nil {
			return err
		}
		if e.prefs.NoTyping {
			return codef(api.KindInvalid, api.CodeTypingOff, "typing notifications are off")
		}
		e.touch()
		data, err = e.seal(id, rc, ephBody{Kind: "typing", Typing: req.On})
		return err
	})
	return id, data, err
}

// SetPresence sets this user's presence and builds its signal for every
// room the user is a member of.
func (e *Engine) SetPresence(ctx context.Context, req api.PresenceReq) (api.PresenceResp, map[crdt.RoomID][]byte, error) {
	switch req.Presence {
	case PresenceOnline, PresenceAway, PresenceOffline:
	default:
		return api.PresenceResp{}, nil, errorf(api.KindInvalid, "presence must be online, away or offline, not %q", req.Presence)
	}
	out := map[crdt.RoomID][]byte{}
	var resp api.PresenceResp
	err := e.do(ctx, func() error {
		if e.prefs.NoPresence {
			return codef(api.KindInvalid, api.CodePresenceOff, "presence is off")
		}
		if req.Presence == PresenceOnline || e.eph.lastActive == 0 {
			e.touch()
		}
		e.prefs.Presence = req.Presence
		e.savePrefs(nil)
		for id, rc := range e.rooms {
			if rc.room == nil || rc.room.MembershipOf(e.ident.User) != rooms.Join {
				continue
			}
			data, err := e.seal(id, rc, ephBody{Kind: "presence", Presence: req.Presence, LastActive: e.eph.lastActive})
			if err != nil {
				e.log.Debug("presence", "room", id, "err", err)
				continue
			}
			out[id] = data
		}
		resp = api.PresenceResp{User: e.ident.User.String(), Presence: req.Presence, LastActiveMS: e.eph.lastActive}
		return nil
	})
	return resp, out, err
}

// presenceRefresh re-signs this user's presence, if it set one, for every
// room it is a member of: nodes that came online or joined since hear it.
func (e *Engine) presenceRefresh(ctx context.Context) map[crdt.RoomID][]byte {
	out := map[crdt.RoomID][]byte{}
	e.do(ctx, func() error {
		if e.prefs.Presence == "" || e.prefs.NoPresence {
			return nil
		}
		for id, rc := range e.rooms {
			if rc.room == nil || rc.room.MembershipOf(e.ident.User) != rooms.Join {
				continue
			}
			if data, err := e.seal(id, rc, ephBody{Kind: "presence", Presence: e.prefs.Presence, LastActive: e.eph.lastActive}); err == nil {
				out[id] = data
			}
		}
		return nil
	})
	return out
}

// Presence returns what this node knows of a user's presence ("" = this
// user).
func (e *Engine) Presence(ctx context.Context, req api.UserReq) (api.PresenceResp, error) {
	var resp api.PresenceResp
	err := e.do(ctx, func() error {
		if req.User == "" || req.User == e.ident.User.String() {
			p := e.prefs.Presence
			if p == "" {
				p = PresenceOnline
			}
			resp = api.PresenceResp{User: e.ident.User.String(), Presence: p, LastActiveMS: e.eph.lastActive}
			return nil
		}
		u, err := parseUser(req.User)
		if err != nil {
			return err
		}
		p, ok := e.eph.presence[u]
		if !ok {
			p = api.PresenceResp{User: u.String(), Presence: PresenceOffline}
		}
		resp = p
		return nil
	})
	return resp, err
}

// Settings changes and reports whether typing and presence are sent and
// shown.
func (e *Engine) Settings(ctx context.Context, req api.SettingsReq) (api.SettingsResp, error) {
	var resp api.SettingsResp
	err := e.do(ctx, func() error {
		if req.Typing != nil {
			e.prefs.NoTyping = !*req.Typing
		}
		if req.Presence != nil {
			e.prefs.NoPresence = !*req.Presence
		}
		if req.Typing != nil || req.Presence != nil {
			e.savePrefs(nil)
		}
		resp = api.SettingsResp{Typing: !e.prefs.NoTyping, Presence: !e.prefs.NoPresence}
		return nil
	})
	return resp, err
}

// Signal takes in a signal received on room's topic; what does not check
// out is dropped silently (it is ephemeral: nobody waits for an answer).
func (e *Engine) Signal(ctx context.Context, room crdt.RoomID, data []byte) {
	w, user, dev, ok := verifySignal(room, data)
	if !ok {
		return
	}
	e.do(ctx, func() error {
		e.signal(room, user, dev, w)
		return nil
	})
}

// verifySignal decodes a signal and checks what needs no room state: its
// size, room, device certificate and signature.
func verifySignal(room crdt.RoomID, data []byte) (*ephWire, crdt.UserID, crdt.DeviceID, bool) {
	var w ephWire
	var none crdt.PublicKey
	ref := p2p.RefOf(room)
	if len(data) > maxSignal || rooms.DecodeBody(data, &w) != nil || string(w.Room) != string(ref[:]) || len(w.Sig) == 0 {
		return nil, none, none, false
	}
	user, err1 := crdt.KeyFromBytes(w.User)
	dev, err2 := crdt.KeyFromBytes(w.Device)
	if err1 != nil || err2 != nil || !crdt.CheckDeviceCert(user, dev, w.Cert) {
		return nil, none, none, false
	}
	sig := w.Sig
	w.Sig = nil
	if !dev.Verify(append([]byte(ephSigLabel), rooms.Encode(w)...), sig) {
		return nil, none, none, false
	}
	return &w, user, dev, true
}

func (e *Engine) signal(room crdt.RoomID, user crdt.UserID, dev crdt.DeviceID, w *ephWire) {
	rc := e.rooms[room]
	now := e.now()
	switch {
	case rc == nil || rc.room == nil || rc.room.MembershipOf(user) != rooms.Join:
		return
	case dev == e.ident.Device.Public() || e.prefs.blocked(user):
		return
	case time.UnixMilli(w.TS).Before(now.Add(-signalSkew)) || time.UnixMilli(w.TS).After(now.Add(signalSkew)):
		return
	}
	body := w.Body
	if rc.room.Encrypted() {
		ep, err := e2ee.EpochIDFromBytes(w.Epoch)
		if err != nil {
			return
		}
		k := e.kr.held(room, ep)
		if k == nil {
			return
		}
		if body, err = k.Open(ephHeader(room, user, dev, w.TS, ep), w.Body); err != nil {
			return
		}
	} else if w.Epoch != nil {
		return
	}
	var b ephBody
	if rooms.DecodeBody(body, &b) != nil {
		return
	}
	sg := &api.Signal{User: user.String(), Device: dev.String()}
	switch {
	case b.Kind == "typing" && !e.prefs.NoTyping:
		on := b.Typing
		sg.Typing = &on
		if on {
			sg.ExpiresMS = w.TS + e.typingTTL().Milliseconds()
		}
		e.typingLapse(room, user, dev, on)
	case b.Kind == "presence" && !e.prefs.NoPresence:
		switch b.Presence {
		case PresenceOnline, PresenceAway, PresenceOffline:
		default:
			return
		}
		if e.eph.presence == nil {
			e.eph.presence = map[crdt.UserID]api.PresenceResp{}
		}
		now := api.PresenceResp{User: user.String(), Presence: b.Presence, LastActiveMS: b.LastActive}
		if old, ok := e.eph.presence[user]; ok && (old.LastActiveMS > b.LastActive || old == now) {
			return // older, or a periodic repeat of what is known
		}
		e.eph.presence[user] = now
		sg.Presence, sg.LastActiveMS = b.Presence, b.LastActive
	case b.Kind == ephKindCall:
		e.callSignalIn(room, user, dev, &b)
		return
	default:
		return
	}
	e.emit(room, api.WatchItem{Kind: b.Kind, Room: room.String(), Signal: sg})
}

func (e *Engine) typingTTL() time.Duration {
	if e.eph.ttl > 0 {
		return e.eph.ttl
	}
	return TypingTTL
}

// typingLapse arms (on) or disarms the end of a user's typing: without a
// renewal within the TTL, watchers see it stop.
func (e *Engine) typingLapse(room crdt.RoomID, user crdt.UserID, dev crdt.DeviceID, on bool) {
	k := typingKey{room, user}
	if !on {
		delete(e.eph.typing, k)
		return
	}
	if e.eph.typing == nil {
		e.eph.typing = map[typingKey]uint64{}
	}
	e.eph.tokens++
	tok := e.eph.tokens
	e.eph.typing[k] = tok
	e.out.Timers = append(e.out.Timers, Timer{Kind: TimerTyping, Room: room, At: e.now().Add(e.typingTTL()), User: user, Device: dev, Token: tok})
}

// Ephemeral joins each room's ephemeral topic, publishes this node's
// signals and hands received ones to the engine.
type Ephemeral struct {
	ps     *pubsub.PubSub // set before Serve; used by its goroutine only
	self   peer.ID
	engine *Engine
	log    *slog.Logger

	track *mailbox.Mailbox[crdt.RoomID]
	out   *mailbox.Mailbox[ephOut]
	wg    sync.WaitGroup
}

type ephOut struct {
	room crdt.RoomID
	data []byte
}

// NewEphemeral wires ephemeral signals to the engine; the replica sets
// its pubsub before Serve.
func NewEphemeral(engine *Engine, log *slog.Logger) *Ephemeral {
	return &Ephemeral{engine: engine, log: log, track: mailbox.New[crdt.RoomID](), out: mailbox.New[ephOut]()}
}

// Track joins a room's topic. It never blocks.
func (x *Ephemeral) Track(room crdt.RoomID) { x.track.Put(room) }

// Publish queues a signal. It never blocks.
func (x *Ephemeral) Publish(room crdt.RoomID, data []byte) { x.out.Put(ephOut{room, data}) }

// Serve runs until ctx is done.
func (x *Ephemeral) Serve(ctx context.Context) error {
	topics := map[crdt.RoomID]*pubsub.Topic{}
	refresh := time.NewTicker(presenceEvery)
	defer refresh.Stop()
	defer func() {
		x.wg.Wait()
		for room, t := range topics {
			x.ps.UnregisterTopicValidator(p2p.EphemeralTopic(room))
			t.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-x.track.Signal:
			for _, room := range x.track.Take() {
				if topics[room] != nil {
					continue
				}
				// Relays (a blind host too) forward only well-formed, signed
				// signals; membership and freshness are judged on receipt.
				if err := x.ps.RegisterTopicValidator(p2p.EphemeralTopic(room), func(_ context.Context, _ peer.ID, m *pubsub.Message) pubsub.ValidationResult {
					if _, _, _, ok := verifySignal(room, m.Data); !ok {
						return pubsub.ValidationReject
					}
					return pubsub.ValidationAccept
				}); err != nil {
					x.log.Warn("ephemeral topic validator", "room", room, "err", err)
					continue
				}
				t, err := x.ps.Join(p2p.EphemeralTopic(room))
				if err != nil {
					x.ps.UnregisterTopicValidator(p2p.EphemeralTopic(room))
					x.log.Warn("join ephemeral topic", "room", room, "err", err)
					continue
				}
				sub, err := t.Subscribe(pubsub.WithBufferSize(64))
				if err != nil {
					x.ps.UnregisterTopicValidator(p2p.EphemeralTopic(room))
					t.Close()
					x.log.Warn("subscribe ephemeral topic", "room", room, "err", err)
					continue
				}
				topics[room] = t
				x.wg.Add(1)
				go x.read(ctx, room, sub)
			}
		case <-refresh.C:
			for room, data := range x.engine.presenceRefresh(ctx) {
				x.Publish(room, data)
			}
		case <-x.out.Signal:
			for _, o := range x.out.Take() {
				if t := topics[o.room]; t != nil {
					if err := t.Publish(ctx, o.data); err != nil && ctx.Err() == nil {
						x.log.Debug("publish signal", "room", o.room, "err", err)
					}
				}
			}
		}
	}
}

func (x *Ephemeral) read(ctx context.Context, room crdt.RoomID, sub *pubsub.Subscription) {
	defer x.wg.Done()
	defer sub.Cancel()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return
		}
		if m.ReceivedFrom == x.self {
			continue
		}
		x.engine.Signal(ctx, room, m.Data)
	}
}

package node

import (
	"context"
	"encoding/hex"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// Calls (docs/protocol.md 5.3): call start, join, leave and end are
// timeline events of type "call" (sealed like messages in an encrypted
// room), so every member's history shows them; offers, answers, ICE
// candidates, hang-ups and declines are ephemeral signals of kind "call"
// on the room's eph topic, addressed to one device inside the (sealed)
// body, and sealed to that device's KEM key in every room (a device box,
// e2ee.SealToDevice), so that no relay reads an SDP or a candidate even in
// an unencrypted room. A device learns the KEM records it seals to from the
// call events (start and join carry their author's), from offers (which
// carry the offerer's) and, in encrypted rooms, from the device records.
// The engine keeps, per room, an index of the calls its events
// describe (built on demand, kept up to date as call events arrive) and
// which call this device takes part in now.

// TypeCall is the event type of call timeline events.
const TypeCall = "call"

// Bounds of call signalling.
const (
	callIDLen       = 16
	maxCallSDP      = 12 << 10
	maxCallCand     = 1 << 10
	ephKindCall     = "call"
	maxCallsPerRoom = 64 // running calls listed; older ones are dropped from the index
	// callQuiet is how long a call runs without any event before it counts
	// as over: a device that crashed in it never authors its leave.
	callQuiet = 12 * time.Hour
	// maxCallKEMs bounds the KEM records learnt from offers.
	maxCallKEMs = 256
)

// CallBody is the body of a call event.
type CallBody struct {
	Call       []byte `cbor:"call"`   // 16 octets
	Action     string `cbor:"action"` // start, join, leave, end
	Video      bool   `cbor:"video,omitempty"`
	DurationMS int64  `cbor:"duration_ms,omitempty"` // end
	Missed     bool   `cbor:"missed,omitempty"`      // end
	// KEM is the author's KEM record (start and join), so that the others
	// seal their signals to its device.
	KEM []byte `cbor:"kem,omitempty"`
}

// callSig is the call part of an ephemeral signal's body (ephBody.Call).
type callSig struct {
	ID        []byte `cbor:"id"`        // the call, 16 octets
	ToUser    []byte `cbor:"to_user"`   // the addressee's user
	ToDevice  []byte `cbor:"to_device"` // and device
	Op        string `cbor:"op"`
	SDP       string `cbor:"sdp,omitempty"`
	Candidate string `cbor:"candidate,omitempty"`
	KEM       []byte `cbor:"kem,omitempty"`       // offer: the sender's KEM record
	Muted     bool   `cbor:"muted,omitempty"`     // state
	VideoOff  bool   `cbor:"video_off,omitempty"` // state
}

// callBox is a call signal sealed to one device (ephBody.CallBox): the
// canonical CBOR of a callSig in an e2ee device box.
type callBox struct {
	To     []byte `cbor:"to"`  // the addressed device
	Seq    uint64 `cbor:"seq"` // of its KEM record sealed to
	Sealed []byte `cbor:"sealed"`
}

// decodeCallBody reads a call event's body strictly.
func decodeCallBody(b []byte) (CallBody, bool) {
	var c CallBody
	if rooms.DecodeBody(b, &c) != nil || len(c.Call) != callIDLen {
		return CallBody{}, false
	}
	switch c.Action {
	case api.CallStart, api.CallJoin, api.CallLeave:
		if c.DurationMS != 0 || c.Missed || (c.KEM != nil && c.Action == api.CallLeave) {
			return CallBody{}, false
		}
	case api.CallEnd:
		if c.DurationMS < 0 || c.KEM != nil {
			return CallBody{}, false
		}
	default:
		return CallBody{}, false
	}
	return c, true
}

// checkCallSig checks the call part of a signal.
func checkCallSig(c *callSig) bool {
	if c == nil || len(c.ID) != callIDLen || len(c.ToUser) != len(crdt.PublicKey{}) || len(c.ToDevice) != len(crdt.PublicKey{}) {
		return false
	}
	if len(c.SDP) > maxCallSDP || len(c.Candidate) > maxCallCand {
		return false
	}
	if (c.Muted || c.VideoOff) && c.Op != api.CallOpState {
		return false
	}
	if (c.KEM != nil) != (c.Op == api.CallOpOffer) {
		return false
	}
	switch c.Op {
	case api.CallOpOffer, api.CallOpAnswer:
		return c.SDP != "" && c.Candidate == ""
	case api.CallOpCandidate:
		return c.SDP == ""
	case api.CallOpHangup, api.CallOpDecline, api.CallOpState:
		return c.SDP == "" && c.Candidate == ""
	}
	return false
}

// kemOf decodes a KEM record carried for device d; nil if it is not one.
func kemOf(b []byte, d crdt.DeviceID) *e2ee.KEMRecord {
	if b == nil {
		return nil
	}
	rec, err := e2ee.DecodeKEMRecord(b)
	if err != nil || rec.Device != d {
		return nil
	}
	return rec
}

// callsState is the engine's call bookkeeping (owned by its goroutine).
type callsState struct {
	index map[crdt.RoomID]*callIndex // nil entry: rebuild on demand
	live  map[crdt.RoomID]string     // the call this device takes part in now, by room (hex)
	// ending lists calls to end once the batch is applied: a leave
	// emptied them after this device had left (both left at once).
	ending []callKey
	peer   map[crdt.RoomID]bool // ... through the daemon's own peer (calls_peer.go), not a client
	// kems are the KEM records learnt from offers, by device.
	kems map[crdt.DeviceID]userKEM
}

// userKEM is a device's KEM record and its user.
type userKEM struct {
	user crdt.UserID
	rec  *e2ee.KEMRecord
}

// callIndex holds the calls a room's readable call events describe.
type callIndex struct {
	calls map[string]*callRec // by hex ID
}

type callKey struct {
	room crdt.RoomID
	id   string
}

type callRec struct {
	id         string
	starter    crdt.UserID
	starterDev crdt.DeviceID
	video      bool
	startTS    int64
	started    bool // its start event is held
	ended      bool
	others     bool // a device other than the starter's joined
	parts      map[crdt.DeviceID]crdt.UserID
	kems       map[crdt.DeviceID]*e2ee.KEMRecord // carried by start and join events
	left       map[crdt.DeviceID]crdt.EventID    // each device's latest leave event
	last       int64                             // ts of the latest event
}

func (x *callIndex) apply(ev *crdt.Event, c CallBody) {
	id := hex.EncodeToString(c.Call)
	r := x.calls[id]
	if r == nil {
		r = &callRec{id: id, parts: map[crdt.DeviceID]crdt.UserID{}}
		x.calls[id] = r
	}
	r.last = max(r.last, ev.TS)
	if rec := kemOf(c.KEM, ev.Device); rec != nil {
		if r.kems == nil {
			r.kems = map[crdt.DeviceID]*e2ee.KEMRecord{}
		}
		r.kems[ev.Device] = rec
	}
	switch c.Action {
	case api.CallStart:
		if !r.started {
			r.started, r.starter, r.starterDev, r.video, r.startTS = true, ev.User, ev.Device, c.Video, ev.TS
		}
		if !r.ended {
			r.parts[ev.Device] = ev.User
		}
	case api.CallJoin:
		if !r.ended {
			r.parts[ev.Device] = ev.User
		}
		if !r.started || ev.Device != r.starterDev {
			r.others = true
		}
	case api.CallLeave:
		delete(r.parts, ev.Device)
		if r.left == nil {
			r.left = map[crdt.DeviceID]crdt.EventID{}
		}
		r.left[ev.Device] = ev.ID
	case api.CallEnd:
		r.ended = true
		clear(r.parts)
	}
	if r.ended && len(x.calls) > maxCallsPerRoom {
		delete(x.calls, id)
	}
}

// running lists the calls with a start, no end, participants and an event
// within callQuiet of now (ms), oldest first (ties by ID).
func (x *callIndex) running(now int64) []*callRec {
	var out []*callRec
	for _, r := range x.calls {
		if r.started && !r.ended && len(r.parts) > 0 && now-r.last < callQuiet.Milliseconds() {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *callRec) int {
		if a.startTS != b.startTS {
			return int(a.startTS - b.startTS)
		}
		return strings.Compare(a.id, b.id)
	})
	return out
}

// callsOf returns rc's call index, building it from the log if needed.
func (e *Engine) callsOf(room crdt.RoomID, rc *roomCtl) *callIndex {
	if x := e.call.index[room]; x != nil {
		return x
	}
	defer e.callsTidy(room, rc)
	x := &callIndex{calls: map[string]*callRec{}}
	if rc.room != nil {
		for _, id := range rc.log.Order() {
			if ok, _ := rc.room.Visible(id); !ok {
				continue
			}
			s, err := e.stored(id) // or added by this step, not committed yet
			if err != nil || s.Event.Type != TypeCall {
				continue
			}
			if c, ok := e.callBodyOf(rc, s.Event); ok {
				x.apply(s.Event, c)
			}
		}
	}
	if e.call.index == nil {
		e.call.index = map[crdt.RoomID]*callIndex{}
	}
	e.call.index[room] = x
	return x
}

// callsTidy leaves, once the index is built, the calls this device is
// still listed in but not part of in this run (it stopped or crashed while
// in them), so that they end.
func (e *Engine) callsTidy(room crdt.RoomID, rc *roomCtl) {
	x := e.call.index[room]
	if x == nil || rc.room == nil || rc.room.MembershipOf(e.ident.User) != rooms.Join {
		return
	}
	dev := e.ident.Device.Public()
	for _, r := range x.running(e.now().UnixMilli()) {
		if _, in := r.parts[dev]; !in || e.call.live[room] == r.id {
			continue
		}
		cid, _ := hex.DecodeString(r.id)
		if _, err := e.author(room, rc, TypeCall, nil, rooms.Encode(CallBody{Call: cid, Action: api.CallLeave})); err != nil {
			e.log.Debug("leave a call left behind", "room", room, "err", err)
			continue
		}
		if x = e.call.index[room]; x == nil {
			return // a rotation rebuilt it; the next look tidies again
		}
		if len(r.parts) == 0 {
			e.endCall(room, rc, r)
		}
	}
}

// endCall authors the end of a call its last participant left.
func (e *Engine) endCall(room crdt.RoomID, rc *roomCtl, r *callRec) error {
	cid, _ := hex.DecodeString(r.id)
	end := CallBody{Call: cid, Action: api.CallEnd, Missed: !r.others}
	if !end.Missed {
		end.DurationMS = max(0, e.now().UnixMilli()-r.startTS)
	}
	_, err := e.author(room, rc, TypeCall, nil, rooms.Encode(end))
	return err
}

// callBodyOf reads a call event this node can read.
func (e *Engine) callBodyOf(rc *roomCtl, ev *crdt.Event) (CallBody, bool) {
	if rc.room.Redacted(ev.ID) || e.prefs.blocked(ev.User) {
		return CallBody{}, false
	}
	body, ok := e.plainBody(rc, ev)
	if !ok {
		return CallBody{}, false
	}
	return decodeCallBody(body)
}

// callsAfter keeps the room's call index up to date with an accepted
// event; events that may change what is readable drop it.
func (e *Engine) callsAfter(room crdt.RoomID, rc *roomCtl, ev *crdt.Event) {
	x := e.call.index[room]
	if x == nil {
		return
	}
	switch {
	case ev.Type == TypeCall:
		if ok, _ := rc.room.Visible(ev.ID); !ok {
			return
		}
		if c, ok := e.callBodyOf(rc, ev); ok {
			x.apply(ev, c)
			if r := x.calls[hex.EncodeToString(c.Call)]; c.Action == api.CallLeave && ev.Device != e.ident.Device.Public() && r != nil && e.writesEnd(rc, r) {
				e.call.ending = append(e.call.ending, callKey{room, r.id})
			}
		} else {
			delete(e.call.index, room) // readable later, with its key
		}
	case keyEvent(ev.Type) || ev.Type == rooms.TypeRedact || ev.Type == rooms.TypeMember:
		delete(e.call.index, room)
	}
}

// writesEnd says whether this device writes the end of r, a call that
// leaves emptied without an end. The device whose own leave emptied the call
// (every other leave in its past) ends it itself; when the last leaves were
// concurrent (several leaves in no other leave's past), none of them saw the
// call empty, and the one of those devices that sorts first writes the end,
// so that exactly one node does, whatever order the leaves arrive in.
func (e *Engine) writesEnd(rc *roomCtl, r *callRec) bool {
	me := e.ident.Device.Public()
	if _, left := r.left[me]; !r.started || r.ended || len(r.parts) > 0 || !left {
		return false
	}
	last, first := 0, ""
	for d, id := range r.left {
		maximal := true
		for d2, id2 := range r.left {
			if d2 != d && rc.room.Precedes(id, id2) {
				maximal = false
				break
			}
		}
		if maximal {
			last++
			if first == "" || d.String() < first {
				first = d.String()
			}
		}
	}
	return last > 1 && first == me.String()
}

// endLeftCalls ends the calls callsAfter listed, once the batch that
// emptied them is applied (authoring waits for the whole batch).
func (e *Engine) endLeftCalls() {
	ending := e.call.ending
	e.call.ending = nil
	for _, k := range ending {
		rc := e.rooms[k.room]
		if rc == nil || rc.room == nil {
			continue
		}
		if r := e.callsOf(k.room, rc).calls[k.id]; r != nil && e.writesEnd(rc, r) {
			if err := e.endCall(k.room, rc, r); err != nil {
				e.log.Debug("end a call left at once", "room", k.room, "err", err)
			}
		}
	}
}

// callEventOf is the call part of a call event's timeline entry.
func callEventOf(ev *crdt.Event, body []byte) *api.CallEvent {
	c, ok := decodeCallBody(body)
	if !ok {
		return nil
	}
	return &api.CallEvent{Call: hex.EncodeToString(c.Call), Action: c.Action, Video: c.Video, DurationMS: c.DurationMS, Missed: c.Missed, Device: ev.Device.String()}
}

// callRoom resolves a room this user is a joined member of.
func (e *Engine) callRoom(s string) (crdt.RoomID, *roomCtl, error) {
	room, rc, err := e.roomOf(s)
	if err != nil {
		return "", nil, err
	}
	if rc.room == nil || rc.room.MembershipOf(e.ident.User) != rooms.Join {
		return "", nil, errorf(api.KindPermission, "you are not a member of room %s", room)
	}
	return room, rc, nil
}

// callReq resolves a request naming a call of a room this user is in.
func (e *Engine) callReq(req api.CallReq) (crdt.RoomID, *roomCtl, []byte, error) {
	room, rc, err := e.callRoom(req.Room)
	if err != nil {
		return "", nil, nil, err
	}
	cid, err := parseCallID(req.Call)
	return room, rc, cid, err
}

func parseCallID(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != callIDLen || hex.EncodeToString(b) != s {
		return nil, errorf(api.KindInvalid, "%q is not a call ID (32 lower-case hex characters)", s)
	}
	return b, nil
}

func (e *Engine) authorCall(room crdt.RoomID, rc *roomCtl, c CallBody) error {
	_, err := e.author(room, rc, TypeCall, nil, rooms.Encode(c))
	if err == nil {
		e.callsOf(room, rc) // authored events pass callsAfter; make sure the index exists
	}
	return err
}

// errInCall is the contract's answer to a second join by one device.
func errInCall() error { return errorf(api.KindInvalid, "this device is already in the call") }

// CallStart starts a call in a room, or joins the one running there. A
// client (the web app reloaded) that starts or joins the call this device
// is in already gets it again, with no new event.
func (e *Engine) CallStart(ctx context.Context, req api.CallStartReq) (api.CallResp, error) {
	return e.callStart(ctx, req, false)
}

// callStart is CallStart for a client or (peer) the daemon's own peer.
func (e *Engine) callStart(ctx context.Context, req api.CallStartReq, peer bool) (api.CallResp, error) {
	var resp api.CallResp
	err := e.do(ctx, func() error {
		room, rc, err := e.callRoom(req.Room)
		if err != nil {
			return err
		}
		run := e.callsOf(room, rc).running(e.now().UnixMilli())
		if l := e.call.live[room]; l != "" {
			if peer || e.call.peer[room] {
				return errInCall()
			}
			if slices.ContainsFunc(run, func(r *callRec) bool { return r.id == l }) {
				resp.Call = l
				return nil
			}
		}
		if len(run) > 0 {
			cid, _ := hex.DecodeString(run[0].id)
			if err := e.authorCall(room, rc, CallBody{Call: cid, Action: api.CallJoin, KEM: e.kr.recRaw}); err != nil {
				return err
			}
			e.setLive(room, run[0].id, peer)
			resp.Call = run[0].id
			return nil
		}
		cid := make([]byte, callIDLen)
		if _, err := io.ReadFull(e.kr.rand, cid); err != nil {
			return err
		}
		if err := e.authorCall(room, rc, CallBody{Call: cid, Action: api.CallStart, Video: req.Video, KEM: e.kr.recRaw}); err != nil {
			return err
		}
		resp.Call = hex.EncodeToString(cid)
		e.setLive(room, resp.Call, peer)
		return nil
	})
	return resp, err
}

// setLive records the call this device is in now in room ("": none), and
// whether through the daemon's own peer.
func (e *Engine) setLive(room crdt.RoomID, call string, peer bool) {
	if e.call.live == nil {
		e.call.live, e.call.peer = map[crdt.RoomID]string{}, map[crdt.RoomID]bool{}
	}
	if call == "" {
		delete(e.call.live, room)
		delete(e.call.peer, room)
		return
	}
	e.call.live[room], e.call.peer[room] = call, peer
}

// CallJoin joins a running call.
func (e *Engine) CallJoin(ctx context.Context, req api.CallReq) (api.Empty, error) {
	return api.Empty{}, e.do(ctx, func() error {
		room, rc, cid, err := e.callReq(req)
		if err != nil {
			return err
		}
		r := e.callsOf(room, rc).calls[req.Call]
		if r == nil || !r.started || r.ended || len(r.parts) == 0 {
			return errorf(api.KindNotFound, "no call %s runs in room %s", req.Call, room)
		}
		if l := e.call.live[room]; l != "" {
			if l == req.Call && !e.call.peer[room] {
				return nil // a client joins again (the web app reloaded)
			}
			return errInCall()
		}
		if err := e.authorCall(room, rc, CallBody{Call: cid, Action: api.CallJoin, KEM: e.kr.recRaw}); err != nil {
			return err
		}
		e.setLive(room, req.Call, false)
		return nil
	})
}

// CallLeave leaves a call; the last participant to leave also ends it.
func (e *Engine) CallLeave(ctx context.Context, req api.CallReq) (api.Empty, error) {
	return api.Empty{}, e.do(ctx, func() error {
		room, rc, cid, err := e.callReq(req)
		if err != nil {
			return err
		}
		r := e.callsOf(room, rc).calls[req.Call]
		dev := e.ident.Device.Public()
		if r == nil || r.ended {
			if e.call.live[room] == req.Call {
				e.setLive(room, "", false)
				return nil
			}
			return errorf(api.KindNotFound, "no call %s runs in room %s", req.Call, room)
		}
		if _, in := r.parts[dev]; !in && e.call.live[room] != req.Call {
			return errorf(api.KindInvalid, "this device is not in call %s", req.Call)
		}
		if e.call.live[room] == req.Call {
			e.setLive(room, "", false)
		}
		if err := e.authorCall(room, rc, CallBody{Call: cid, Action: api.CallLeave}); err != nil {
			return err
		}
		r = e.callsOf(room, rc).calls[req.Call] // a rotation before the leave may have rebuilt the index
		if r != nil && r.started && !r.ended && len(r.parts) == 0 {
			return e.endCall(room, rc, r)
		}
		return nil
	})
}

// Calls lists a room's running calls.
func (e *Engine) Calls(ctx context.Context, req api.RoomReq) (api.CallsResp, error) {
	resp := api.CallsResp{Calls: []api.CallInfo{}}
	err := e.do(ctx, func() error {
		room, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		if rc.room == nil {
			return nil
		}
		st := e.stateOf(rc)
		for _, r := range e.callsOf(room, rc).running(e.now().UnixMilli()) {
			ci := api.CallInfo{Call: r.id, Room: room.String(), Video: r.video, StartedBy: r.starter.String(), StartedTS: r.startTS, Participants: []api.CallParticipant{}}
			for d, u := range r.parts {
				name := st.Member(u).DisplayName
				if name == "" {
					name = e.profileOf(u).DisplayName
				}
				ci.Participants = append(ci.Participants, api.CallParticipant{User: u.String(), Device: d.String(), Name: name})
			}
			slices.SortFunc(ci.Participants, func(a, b api.CallParticipant) int {
				return strings.Compare(a.User+"/"+a.Device, b.User+"/"+b.Device)
			})
			resp.Calls = append(resp.Calls, ci)
		}
		return nil
	})
	return resp, err
}

// CallSignal builds one signalling message to one device of a call.
func (e *Engine) CallSignal(ctx context.Context, req api.CallSignalReq) (crdt.RoomID, []byte, error) {
	room, out, err := e.sealCall(ctx, req.Room, func(crdt.RoomID, *roomCtl) ([]*callSig, error) {
		s, err := callSigOf(req)
		if s != nil && s.Op == api.CallOpOffer {
			s.KEM = e.kr.recRaw
		}
		return []*callSig{s}, err
	})
	if err != nil {
		return room, nil, err
	}
	return room, out[0], nil
}

// sealCall builds, in a room this user is a member of, the call signals
// that sig makes: each sealed to its device, signed (and, in an encrypted
// room, sealed under the room's epoch too).
func (e *Engine) sealCall(ctx context.Context, roomArg string, sig func(crdt.RoomID, *roomCtl) ([]*callSig, error)) (crdt.RoomID, [][]byte, error) {
	var room crdt.RoomID
	var out [][]byte
	err := e.do(ctx, func() error {
		var rc *roomCtl
		var err error
		if room, rc, err = e.callRoom(roomArg); err != nil {
			return err
		}
		sigs, err := sig(room, rc)
		if err != nil {
			return err
		}
		me := e.ident.Device.Public()
		for _, s := range sigs {
			to, _ := crdt.KeyFromBytes(s.ToDevice)
			rec := e.callKEM(room, rc, to)
			if rec == nil {
				return errorf(api.KindUnavailable, "no key of device %s yet: it has not joined the call", to)
			}
			box, err := e2ee.SealToDevice(room, me, rec, rooms.Encode(s))
			if err != nil {
				return err
			}
			data, err := e.seal(room, rc, ephBody{Kind: ephKindCall, CallBox: &callBox{To: to[:], Seq: rec.Seq, Sealed: box}})
			if err != nil {
				return err
			}
			if len(data) > maxSignal {
				return errorf(api.KindInvalid, "signal too large: %d bytes sealed, at most %d", len(data), maxSignal)
			}
			out = append(out, data)
		}
		return nil
	})
	if err != nil {
		return room, nil, err
	}
	return room, out, nil
}

// callKEM is the KEM record of device d that this node knows: from an
// offer, from a call event of room, or from the device records of room or
// (a device of this user) of any room.
func (e *Engine) callKEM(room crdt.RoomID, rc *roomCtl, d crdt.DeviceID) *e2ee.KEMRecord {
	if k, ok := e.call.kems[d]; ok {
		return k.rec
	}
	for _, r := range e.callsOf(room, rc).calls {
		if rec := r.kems[d]; rec != nil {
			return rec
		}
	}
	if rec, _ := rc.room.DeviceOf(d); rec != nil {
		return rec
	}
	for _, id := range e.sortedRooms() {
		if o := e.rooms[id]; o != nil && o.room != nil {
			if rec, u := o.room.DeviceOf(d); rec != nil && u == e.ident.User {
				return rec
			}
		}
	}
	return nil
}

// ownDevices are the other devices of this user whose KEM records this
// node knows (device records of its rooms, offers).
func (e *Engine) ownDevices() []crdt.DeviceID {
	me := e.ident.Device.Public()
	seen := map[crdt.DeviceID]bool{me: true}
	var out []crdt.DeviceID
	add := func(d crdt.DeviceID) {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, id := range e.sortedRooms() {
		rc := e.rooms[id]
		if rc == nil || rc.room == nil || !rc.room.Encrypted() {
			continue
		}
		for _, rec := range rc.room.MemberDevices(nil) {
			if _, u := rc.room.DeviceOf(rec.Device); u == e.ident.User {
				add(rec.Device)
			}
		}
	}
	for d, k := range e.call.kems {
		if k.user == e.ident.User {
			add(d)
		}
	}
	slices.SortFunc(out, func(a, b crdt.DeviceID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// callSigOf checks a signalling request.
func callSigOf(req api.CallSignalReq) (*callSig, error) {
	cid, err := parseCallID(req.Call)
	if err != nil {
		return nil, err
	}
	u, err := crdt.ParseKey(req.ToUser)
	if err != nil {
		return nil, errorf(api.KindInvalid, "%q is not a user ID", req.ToUser)
	}
	d, err := crdt.ParseKey(req.ToDevice)
	if err != nil {
		return nil, errorf(api.KindInvalid, "%q is not a device ID", req.ToDevice)
	}
	if len(req.SDP) > maxCallSDP || len(req.Candidate) > maxCallCand {
		return nil, errorf(api.KindInvalid, "signal too large: sdp at most %d bytes, candidate at most %d", maxCallSDP, maxCallCand)
	}
	s := &callSig{ID: cid, ToUser: u[:], ToDevice: d[:], Op: req.Op, SDP: req.SDP, Candidate: req.Candidate, Muted: req.Muted, VideoOff: req.VideoOff}
	check := *s
	if s.Op == api.CallOpOffer {
		check.KEM = []byte{} // the engine adds its record
	}
	if req.Op == api.CallOpDecline || !checkCallSig(&check) {
		return nil, errorf(api.KindInvalid, "op must be offer or answer (with sdp), candidate, hangup, or state (muted, video_off), not %q with these fields", req.Op)
	}
	return s, nil
}

// CallDecline builds the decline signals of a call: to the caller's device,
// and to every other device of this user this node knows, so that they stop
// ringing.
func (e *Engine) CallDecline(ctx context.Context, req api.CallReq) (crdt.RoomID, [][]byte, error) {
	return e.sealCall(ctx, req.Room, func(room crdt.RoomID, rc *roomCtl) ([]*callSig, error) {
		cid, err := parseCallID(req.Call)
		if err != nil {
			return nil, err
		}
		r := e.callsOf(room, rc).calls[req.Call]
		if r == nil || !r.started || r.ended {
			return nil, errorf(api.KindNotFound, "no call %s runs in room %s", req.Call, room)
		}
		out := []*callSig{{ID: cid, ToUser: r.starter[:], ToDevice: r.starterDev[:], Op: api.CallOpDecline}}
		for _, d := range e.ownDevices() {
			if d != r.starterDev && e.callKEM(room, rc, d) != nil {
				out = append(out, &callSig{ID: cid, ToUser: e.ident.User[:], ToDevice: d[:], Op: api.CallOpDecline})
			}
		}
		return out, nil
	})
}

// callSignalIn takes in a verified call signal from a member: one sealed
// to this device goes to the watchers.
func (e *Engine) callSignalIn(room crdt.RoomID, user crdt.UserID, dev crdt.DeviceID, b *ephBody) {
	bx := b.CallBox
	me := e.ident.Device.Public()
	if bx == nil || string(bx.To) != string(me[:]) || bx.Seq != e.kr.me.Seq {
		return
	}
	pt, err := e2ee.OpenFromDevice(room, dev, e.kr.me, bx.Sealed)
	if err != nil {
		return
	}
	var s callSig
	if rooms.DecodeBody(pt, &s) != nil || !checkCallSig(&s) || string(s.ToUser) != string(e.ident.User[:]) || string(s.ToDevice) != string(me[:]) {
		return
	}
	if s.KEM != nil {
		rec := kemOf(s.KEM, dev)
		if rec == nil {
			return
		}
		if e.call.kems == nil || len(e.call.kems) >= maxCallKEMs {
			e.call.kems = map[crdt.DeviceID]userKEM{}
		}
		e.call.kems[dev] = userKEM{user, rec}
	}
	e.emit(room, api.WatchItem{Kind: ephKindCall, Room: room.String(), CallSignal: &api.CallSignal{
		Call: hex.EncodeToString(s.ID), FromUser: user.String(), FromDevice: dev.String(), Op: s.Op, SDP: s.SDP, Candidate: s.Candidate,
		Muted: s.Muted, VideoOff: s.VideoOff,
	}})
}

// Package spypeer records, for tests, what a hostile libp2p peer is told:
// the pubsub topics its peers announce to it, the pubsub messages they send
// it, and the frames they send on the streams it accepts. It answers
// nothing and is imported by tests only.
package spypeer

import (
	"bytes"
	"context"
	"encoding/base32"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio"

	"github.com/parley-p2p/parley/crdt"
)

// Spy is the record; its methods are safe for concurrent use.
type Spy struct {
	mu       sync.Mutex
	topics   map[string]bool
	messages map[string][][]byte // by topic
	frames   [][]byte
}

// New makes an empty record.
func New() *Spy { return &Spy{topics: map[string]bool{}, messages: map[string][][]byte{}} }

// Inspect records the subscriptions and messages of every RPC a peer sends;
// install it with pubsub.WithAppSpecificRpcInspector.
func (s *Spy) Inspect(_ peer.ID, rpc *pubsub.RPC) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range rpc.GetSubscriptions() {
		if sub.GetSubscribe() {
			s.topics[sub.GetTopicid()] = true
		}
	}
	for _, m := range rpc.GetPublish() {
		s.messages[m.GetTopic()] = append(s.messages[m.GetTopic()], slices.Clone(m.GetData()))
	}
	return nil
}

// Record is a stream handler: it keeps up to 8 unsigned-varint-prefixed
// frames of at most 4 MiB, for 10 s at most, and resets the stream.
func (s *Spy) Record(st network.Stream) {
	defer st.Reset()
	defer time.AfterFunc(10*time.Second, func() { st.Reset() }).Stop() // mocknet streams have no deadlines
	r := msgio.NewVarintReaderSize(st, 4<<20)
	for range 8 {
		b, err := r.ReadMsg()
		if err != nil {
			return
		}
		s.Keep(b)
	}
}

// Keep adds bytes the peer received some other way.
func (s *Spy) Keep(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, slices.Clone(b))
}

// Topics lists, sorted, the announced topics whose names start with prefix.
func (s *Spy) Topics(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t := range s.topics {
		if strings.HasPrefix(t, prefix) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// Messages returns the messages received on topics whose names start with prefix.
func (s *Spy) Messages(prefix string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for t, ms := range s.messages {
		if strings.HasPrefix(t, prefix) {
			out = append(out, ms...)
		}
	}
	return out
}

// Received returns every frame and message recorded.
func (s *Spy) Received() [][]byte {
	out := s.Messages("")
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(out, s.frames...)
}

// Subscribe joins ps to every announced topic whose name starts with prefix
// and subscribes to it; cancel ends the subscriptions.
func (s *Spy) Subscribe(ps *pubsub.PubSub, prefix string) (cancel func(), err error) {
	var subs []*pubsub.Subscription
	cancel = func() {
		for _, sub := range subs {
			sub.Cancel()
		}
	}
	for _, t := range s.Topics(prefix) {
		tp, err := ps.Join(t)
		if err != nil {
			return cancel, err
		}
		sub, err := tp.Subscribe()
		if err != nil {
			return cancel, err
		}
		subs = append(subs, sub)
	}
	return cancel, nil
}

// Names returns what the names of room topics (/parley/room/NAME/...)
// carry, for a spy to name a room with: NAME decoded as a CID and as
// lower-case unpadded base32, where it decodes.
func Names(topics []string) [][]byte {
	var out [][]byte
	for _, t := range topics {
		name := strings.Split(strings.TrimPrefix(t, "/parley/room/"), "/")[0]
		if id, err := crdt.ParseID(name); err == nil {
			out = append(out, []byte(id))
		}
		if b, err := base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding).DecodeString(name); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// Leaks returns the recorded frames and messages that contain any of secrets.
func (s *Spy) Leaks(secrets ...[]byte) [][]byte {
	var out [][]byte
	for _, b := range s.Received() {
		if slices.ContainsFunc(secrets, func(sec []byte) bool { return bytes.Contains(b, sec) }) {
			out = append(out, b)
		}
	}
	return out
}

// syncReq is a request of the sync protocol (docs/protocol.md §3), and
// syncResp what of an answer matters to AskSync.
type syncReq struct {
	Op   string `cbor:"op"`
	Room []byte `cbor:"room,omitempty"`
	User []byte `cbor:"user,omitempty"`
	Cert []byte `cbor:"cert,omitempty"`
	Msg  []byte `cbor:"msg,omitempty"`
}

type syncResp struct {
	Op     string   `cbor:"op"`
	Events [][]byte `cbor:"events"`
}

// AskSync plays a peer that asks server's sync protocol (proto) for a room
// named as given: a session that starts with heads (as user, with its
// device certificate cert), and requests that skip it. It keeps every
// answer (Frames) and returns how many events were served; err is set
// only when no stream opens.
func (s *Spy) AskSync(ctx context.Context, h host.Host, server peer.ID, proto protocol.ID, user, cert, room []byte) (events int, err error) {
	for _, reqs := range [][]syncReq{
		{{Op: "heads", Room: room, User: user, Cert: cert}, {Op: "since", Room: room}},
		{{Op: "since", Room: room}},
		{{Op: "reconcile", Room: room, Msg: []byte{0x51}}},
	} {
		st, err := h.NewStream(ctx, server, proto)
		if err != nil {
			return events, err
		}
		st.SetDeadline(time.Now().Add(10 * time.Second))
		w, r := msgio.NewVarintWriter(st), msgio.NewVarintReaderSize(st, 4<<20)
		for _, req := range reqs {
			b, err := crdt.Marshal(req)
			if err != nil || w.WriteMsg(b) != nil {
				break
			}
			resp, err := r.ReadMsg()
			if err != nil {
				break
			}
			s.Keep(resp)
			var m syncResp
			if cbor.Unmarshal(resp, &m) == nil {
				events += len(m.Events)
			}
			if m.Op == "error" {
				break
			}
		}
		st.Reset()
	}
	return events, nil
}

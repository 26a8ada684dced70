package p2p

import (
	"context"
	"crypto/hmac"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/wire"
)

// Device linking (docs/protocol.md §8, docs/design.md §5.4 d).
//
// A device holding the user's master key issues a one-time code: its peer
// ID, its addresses, a random 128-bit secret and an expiry. The new device
// dials that peer on LinkProtocol (the libp2p handshake authenticates the
// peer ID, so the code names whom to trust), proves it knows the secret
// with an HMAC bound to both peer IDs and its keys (the secret itself never
// crosses the wire), and receives the master key's certificate over its
// device key, the user ID, the user's rooms and peers to sync them from.
// A code is single use and expires (DefaultLinkTTL). Wrong proofs are
// counted per dialing peer: after maxLinkTries of them that peer is refused
// for linkLockout, while other peers (the real new device) may still use
// the code. With a 128-bit secret guessing is hopeless, so a global count
// would only let strangers burn the user's codes. The new device holds no
// master key: it cannot link others.
//
// This file is the protocol: the code, the two frames, the linking side's
// handler and state (Linker) and the joining side (LinkDevice). What the
// linking side needs of the node is LinkEngine; the node turns the
// errors into the API's and follows the rooms a new device learns
// (node/link.go, node/link_home.go).

// LinkProtocol is the device-linking protocol.
const LinkProtocol = protocol.ID("/parley/link/1.0.0")

// Link protocol limits.
const (
	DefaultLinkTTL  = 10 * time.Minute
	MaxLinkPending  = 4 // live codes per linking device
	maxLinkTTL      = time.Hour
	maxLinkTries    = 3              // wrong proofs from one peer before it is locked out ...
	linkLockout     = DefaultLinkTTL // ... for this long after its last one
	maxLinkFailPeer = 4096           // peers whose wrong proofs are remembered
	maxLinkCode     = 2048
	maxLinkAddrs    = 16
	maxLinkFrame    = 64 << 10 // the answer
	maxLinkRequest  = 4 << 10  // the request (a KEM record is 1.3 KB)
	linkTimeout     = 20 * time.Second
	linkSecretSize  = 16
	labelLinkProof  = "parley/v1/link-proof\x00"
	linkCodeVersion = 1
)

// LinkCodePrefix starts every link code's text.
const LinkCodePrefix = "parley-link-"

var linkB32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Errors of the link handshake (the linking side's answers). On the wire
// an answer carries the text without "p2p: " (docs/protocol.md §8), which
// LinkDevice maps back to these.
var (
	ErrLinkExpired = errors.New("p2p: link code expired")
	ErrLinkUsed    = errors.New("p2p: link code already used")
	ErrLinkWrong   = errors.New("p2p: wrong link code")
	ErrLinkLocked  = errors.New("p2p: too many wrong link attempts from this device: wait and try again")
	ErrNoMaster    = errors.New("p2p: this device holds no master key (another device linked it)")
)

// Errors of NewCode besides ErrNoMaster.
var (
	ErrLinkNoAddress    = errors.New("p2p: this node listens on no address a new device could dial")
	ErrLinkCodesWaiting = errors.New("p2p: too many link codes are waiting")
)

// wireText is an error as a link answer carries it.
func wireText(err error) string { return strings.TrimPrefix(err.Error(), "p2p: ") }

// LinkEngine is what the linking side needs of the node: the rooms a new
// device is to follow, and the check of its KEM record (a room-layer
// format, rooms/e2ee). Its methods are safe for concurrent use.
type LinkEngine interface {
	// JoinedRooms lists the rooms the user is joined in.
	JoinedRooms(ctx context.Context) ([]crdt.RoomID, error)
	// KEMSignedBy reports whether kem is a KEM record signed by device
	// (an Ed25519 public key).
	KEMSignedBy(kem, device []byte) bool
}

// LinkCode is a decoded one-time code. It never prints its secret: only
// Encode writes it out.
type LinkCode struct {
	Peer    peer.ID
	Addrs   []ma.Multiaddr
	Expires time.Time
	secret  [linkSecretSize]byte
}

// linkCodeWire is the code's CBOR form.
type linkCodeWire struct {
	V      int      `cbor:"v"`
	Peer   []byte   `cbor:"peer"`
	Addrs  [][]byte `cbor:"addrs"`
	Secret []byte   `cbor:"secret"`
	Exp    int64    `cbor:"exp"` // Unix ms
}

// String never shows the secret.
func (c *LinkCode) String() string {
	return fmt.Sprintf("LinkCode(%s, expires %s)", c.Peer, c.Expires.UTC().Format(time.RFC3339))
}

// GoString never shows the secret.
func (c *LinkCode) GoString() string { return c.String() }

// Format never shows the secret, whatever the verb.
func (c *LinkCode) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// Encode renders the code as text: "parley-link-" and the lower-case
// unpadded base32 of its canonical CBOR.
func (c *LinkCode) Encode() string {
	w := linkCodeWire{V: linkCodeVersion, Peer: []byte(c.Peer), Secret: c.secret[:], Exp: c.Expires.UnixMilli()}
	for _, a := range c.Addrs {
		w.Addrs = append(w.Addrs, a.Bytes())
	}
	b, err := crdt.Marshal(w)
	if err != nil {
		panic("p2p: encode link code: " + err.Error())
	}
	return LinkCodePrefix + strings.ToLower(linkB32.EncodeToString(b))
}

// ErrBadLinkCode is returned for text that is not a link code.
var ErrBadLinkCode = errors.New("p2p: malformed link code")

// ParseLinkCode decodes a code written by Encode. It checks the shape
// only; expiry is the caller's to judge.
func ParseLinkCode(s string) (*LinkCode, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxLinkCode || !strings.HasPrefix(s, LinkCodePrefix) {
		return nil, ErrBadLinkCode
	}
	b, err := linkB32.DecodeString(strings.ToUpper(s[len(LinkCodePrefix):]))
	if err != nil {
		return nil, ErrBadLinkCode
	}
	var w linkCodeWire
	if err := crdt.UnmarshalCanonical(b, &w); err != nil {
		return nil, ErrBadLinkCode
	}
	if w.V != linkCodeVersion || len(w.Secret) != linkSecretSize || w.Exp <= 0 || len(w.Addrs) == 0 || len(w.Addrs) > maxLinkAddrs {
		return nil, ErrBadLinkCode
	}
	p, err := peer.IDFromBytes(w.Peer)
	if err != nil {
		return nil, ErrBadLinkCode
	}
	c := &LinkCode{Peer: p, Expires: time.UnixMilli(w.Exp)}
	copy(c.secret[:], w.Secret)
	for _, a := range w.Addrs {
		m, err := ma.NewMultiaddrBytes(a)
		if err != nil {
			return nil, ErrBadLinkCode
		}
		c.Addrs = append(c.Addrs, m)
	}
	return c, nil
}

// linkReq is the joiner's one frame: its device key, its KEM record and
// the proof of the code's secret.
type linkReq struct {
	Device []byte `cbor:"device"` // 32-byte Ed25519 public key; must be the dialing peer's key
	KEM    []byte `cbor:"kem"`    // e2ee.KEMRecord signed by Device
	Proof  []byte `cbor:"proof"`  // HMAC-SHA256(secret, labelLinkProof ‖ linker ‖ joiner ‖ device ‖ kem)
}

// linkResp is the linker's one frame.
type linkResp struct {
	OK    bool     `cbor:"ok"`
	Err   string   `cbor:"err,omitempty"`
	User  []byte   `cbor:"user,omitempty"`  // the master public key (user ID)
	Cert  []byte   `cbor:"cert,omitempty"`  // crdt.CertifyDevice(master, device)
	Rooms [][]byte `cbor:"rooms,omitempty"` // rooms the user is joined in
	Peers []string `cbor:"peers,omitempty"` // multiaddrs (with /p2p/) to sync them from
}

func decodeLinkReq(b []byte) (*linkReq, error) {
	var r linkReq
	if err := crdt.UnmarshalCanonical(b, &r); err != nil {
		return nil, err
	}
	if len(r.Device) != 32 || len(r.Proof) != sha256.Size || len(r.KEM) == 0 {
		return nil, errors.New("malformed link request")
	}
	return &r, nil
}

func decodeLinkResp(b []byte) (*linkResp, error) {
	var r linkResp
	if err := crdt.UnmarshalCanonical(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func linkProof(secret []byte, linker, joiner peer.ID, device, kem []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(labelLinkProof))
	for _, part := range [][]byte{[]byte(linker), []byte(joiner), device, kem} {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(part)>>24), byte(len(part)>>16), byte(len(part)>>8), byte(len(part))
		m.Write(n[:])
		m.Write(part)
	}
	return m.Sum(nil)
}

// pendingLink is an issued code. Its state is kept after use so that a
// replay gets a clear answer until the code would have expired.
type pendingLink struct {
	secret  [linkSecretSize]byte
	expires time.Time
	state   error // nil: live; ErrLinkUsed
}

// linkFailures is one peer's wrong proofs.
type linkFailures struct {
	n    int
	last time.Time
}

// Linker serves LinkProtocol on a device holding the master key and issues
// codes. Its methods are safe for concurrent use.
type Linker struct {
	host   host.Host
	engine LinkEngine
	master *crdt.SecretKey // nil: a linked device (issues no codes)
	log    *slog.Logger
	now    func() time.Time
	rand   io.Reader

	mu      sync.Mutex
	pending []*pendingLink            // guarded by mu
	fails   map[peer.ID]*linkFailures // wrong proofs per dialing peer; guarded by mu
}

// NewLinker registers LinkProtocol's handler on h. master may be nil.
func NewLinker(h host.Host, engine LinkEngine, master *crdt.SecretKey, log *slog.Logger) *Linker {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l := &Linker{host: h, engine: engine, master: master, log: log, now: time.Now, rand: cryptorand.Reader, fails: map[peer.ID]*linkFailures{}}
	h.SetStreamHandler(LinkProtocol, l.handle)
	return l
}

// Close removes the protocol handler.
func (l *Linker) Close() { l.host.RemoveStreamHandler(LinkProtocol) }

// NewCode issues a one-time code valid for ttl (0: DefaultLinkTTL). It
// fails with ErrNoMaster on a linked device, ErrLinkNoAddress when the
// host listens nowhere, and ErrLinkCodesWaiting when MaxLinkPending
// codes are live.
func (l *Linker) NewCode(ttl time.Duration) (*LinkCode, error) {
	if l.master == nil {
		return nil, ErrNoMaster
	}
	if ttl <= 0 {
		ttl = DefaultLinkTTL
	}
	ttl = min(ttl, maxLinkTTL)
	c := &LinkCode{Peer: l.host.ID(), Expires: l.now().Add(ttl)}
	for _, a := range l.host.Addrs() {
		if len(c.Addrs) < maxLinkAddrs {
			c.Addrs = append(c.Addrs, a)
		}
	}
	if len(c.Addrs) == 0 {
		return nil, ErrLinkNoAddress
	}
	if _, err := io.ReadFull(l.rand, c.secret[:]); err != nil {
		return nil, fmt.Errorf("read randomness: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked()
	live := 0
	for _, p := range l.pending {
		if p.state == nil {
			live++
		}
	}
	if live >= MaxLinkPending {
		return nil, ErrLinkCodesWaiting
	}
	l.pending = append(l.pending, &pendingLink{secret: c.secret, expires: c.Expires})
	return c, nil
}

// sweepLocked forgets codes past their expiry (and a grace period, in
// which a replay still gets a precise answer).
func (l *Linker) sweepLocked() {
	now := l.now()
	kept := l.pending[:0]
	for _, p := range l.pending {
		if now.Before(p.expires.Add(maxLinkTTL)) {
			kept = append(kept, p)
		}
	}
	l.pending = kept
	for p, f := range l.fails {
		if !now.Before(f.last.Add(linkLockout)) {
			delete(l.fails, p)
		}
	}
}

// redeem checks a proof against the issued codes and, on success, marks the
// code used. A wrong proof counts against the joiner only: after
// maxLinkTries of them the joiner is refused until linkLockout has passed
// since its last one, right proof or not.
func (l *Linker) redeem(joiner peer.ID, req *linkReq) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked()
	f := l.fails[joiner]
	if f != nil && f.n >= maxLinkTries {
		return ErrLinkLocked
	}
	for _, p := range l.pending {
		want := linkProof(p.secret[:], l.host.ID(), joiner, req.Device, req.KEM)
		if !hmac.Equal(want, req.Proof) {
			continue
		}
		switch {
		case p.state != nil:
			return p.state
		case !l.now().Before(p.expires):
			return ErrLinkExpired
		}
		p.state = ErrLinkUsed
		return nil
	}
	if f == nil {
		if len(l.fails) >= maxLinkFailPeer {
			// Forgetting lets a peer guess again sooner; with a 128-bit
			// secret that costs nothing, unlike a lock on everyone.
			clear(l.fails)
		}
		f = &linkFailures{}
		l.fails[joiner] = f
	}
	f.n++
	f.last = l.now()
	if f.n >= maxLinkTries {
		return ErrLinkLocked
	}
	return ErrLinkWrong
}

func (l *Linker) handle(st network.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(linkTimeout))
	r := wire.NewFrameReader(st)
	b, err := r.Next(maxLinkRequest)
	if err != nil {
		st.Reset()
		return
	}
	resp := l.answer(st.Conn().RemotePeer(), st.Conn().RemotePublicKey(), b)
	if !resp.OK {
		// Only the reason and the peer: never the request (it holds the proof).
		l.log.Info("device link refused", "peer", st.Conn().RemotePeer(), "reason", resp.Err)
	}
	out, err := crdt.Marshal(resp)
	if err != nil {
		st.Reset()
		return
	}
	msgio.NewVarintWriter(st).WriteMsg(out)
}

// answer judges one link request from the peer joiner with public key pub.
func (l *Linker) answer(joiner peer.ID, pub crypto.PubKey, b []byte) linkResp {
	fail := func(err error) linkResp { return linkResp{Err: wireText(err)} }
	if l.master == nil {
		return fail(ErrNoMaster)
	}
	req, err := decodeLinkReq(b)
	if err != nil {
		return fail(errors.New("malformed link request"))
	}
	raw, err := pubRaw(pub)
	if err != nil || string(raw) != string(req.Device) {
		return fail(errors.New("the device key must be the dialing peer's key"))
	}
	if !l.engine.KEMSignedBy(req.KEM, req.Device) {
		return fail(errors.New("the KEM record is not signed by the device"))
	}
	if err := l.redeem(joiner, req); err != nil {
		return fail(err)
	}
	dev, _ := crdt.KeyFromBytes(req.Device)
	user := l.master.Public()
	resp := linkResp{OK: true, User: user[:], Cert: crdt.CertifyDevice(l.master, dev)}
	ctx, cancel := context.WithTimeout(context.Background(), linkTimeout)
	defer cancel()
	rooms, err := l.engine.JoinedRooms(ctx)
	if err != nil { // the code is used: link the device all the same, it follows rooms as it is invited
		l.log.Warn("device link: list the joined rooms", "err", err)
	}
	for _, r := range rooms {
		resp.Rooms = append(resp.Rooms, []byte(r))
	}
	for _, a := range l.host.Addrs() {
		if len(resp.Peers) < maxLinkAddrs {
			resp.Peers = append(resp.Peers, a.String()+"/p2p/"+l.host.ID().String())
		}
	}
	l.log.Info("device linked", "device", dev, "rooms", len(rooms))
	return resp
}

func pubRaw(pub crypto.PubKey) ([]byte, error) {
	if pub == nil {
		return nil, errors.New("no public key")
	}
	return pub.Raw()
}

// LinkResult is what a joining device learns.
type LinkResult struct {
	User  crdt.UserID
	Cert  []byte
	Rooms []crdt.RoomID
	Peers []string
}

// LinkDevice runs the joining side of the handshake on h, whose peer key
// must be dev (the new device key). kemRec is the device's signed KEM
// record.
func LinkDevice(ctx context.Context, h host.Host, code *LinkCode, dev *crdt.SecretKey, kemRec []byte) (*LinkResult, error) {
	if !time.Now().Before(code.Expires) {
		return nil, ErrLinkExpired
	}
	ctx, cancel := context.WithTimeout(ctx, linkTimeout)
	defer cancel()
	h.Peerstore().AddAddrs(code.Peer, code.Addrs, peerstore.TempAddrTTL)
	if err := h.Connect(ctx, peer.AddrInfo{ID: code.Peer, Addrs: code.Addrs}); err != nil {
		return nil, fmt.Errorf("reach the linking device: %w", err)
	}
	st, err := h.NewStream(ctx, code.Peer, LinkProtocol)
	if err != nil {
		return nil, fmt.Errorf("open link stream: %w", err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(linkTimeout))
	pub := dev.Public()
	req := linkReq{Device: pub[:], KEM: kemRec, Proof: linkProof(code.secret[:], code.Peer, h.ID(), pub[:], kemRec)}
	b, err := crdt.Marshal(req)
	if err != nil {
		return nil, err
	}
	if err := msgio.NewVarintWriter(st).WriteMsg(b); err != nil {
		return nil, fmt.Errorf("send link request: %w", err)
	}
	rb, err := msgio.NewVarintReaderSize(st, maxLinkFrame).ReadMsg()
	if err != nil {
		return nil, fmt.Errorf("read link answer: %w", err)
	}
	resp, err := decodeLinkResp(rb)
	if err != nil {
		return nil, fmt.Errorf("read link answer: %w", err)
	}
	if !resp.OK {
		return nil, linkError(resp.Err)
	}
	user, err := crdt.KeyFromBytes(resp.User)
	if err != nil || !crdt.CheckDeviceCert(user, pub, resp.Cert) {
		return nil, errors.New("link answer: the certificate does not bind this device")
	}
	out := &LinkResult{User: user, Cert: resp.Cert, Peers: resp.Peers}
	for _, r := range resp.Rooms {
		id, err := crdt.IDFromBytes(r)
		if err != nil {
			return nil, errors.New("link answer: malformed room ID")
		}
		out.Rooms = append(out.Rooms, id)
	}
	return out, nil
}

// linkError maps the linker's answer back to the sentinel errors.
func linkError(s string) error {
	for _, e := range []error{ErrLinkExpired, ErrLinkUsed, ErrLinkWrong, ErrLinkLocked, ErrNoMaster} {
		if s == wireText(e) {
			return e
		}
	}
	return fmt.Errorf("link refused: %s", s)
}

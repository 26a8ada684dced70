package node

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/badgerstore"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// End-to-end encryption in the engine (docs/design.md §5, rooms/keys.go
// for the rules). The engine goroutine owns all of it:
//
//   - An encrypted room's creator announces its device (a `device` event
//     with its KEM record) and introduces the first epoch (a `rotate`
//     event, or in a `joined` room the barrier the announcement carries).
//     A joiner announces its device after its join.
//   - Sending a content event picks the newest admissible epoch this device
//     holds, or rotates first (after a leave, when the epoch is due by the
//     RotationPolicy, or when it holds no admissible epoch).
//   - Kicks and bans of joined members carry the next epoch.
//   - On every accepted rotation or forward wrapped to this device, the
//     engine opens it, persists the secret (sealed at rest, write-ahead:
//     before any event that uses a new epoch is published), follows
//     back-links, and decrypts the events that waited for it. The
//     plaintext is kept under a local-only key and deleted with the event's
//     body on redaction.
//   - Healing: a member device lacking an admissible epoch gets a key
//     forward from the lowest-ID member device holding it; the others
//     check again after a jittered back-off (duplicates are harmless).
//     Healing waits while the room's copy has a gap (a forward may be on
//     its way), and authoring in reaction to events waits until the whole
//     batch is applied.
//   - The room's name and topic, and this user's profile, are sealed
//     events; a joiner publishes its profile once it holds a key, so that
//     it does not rotate just for that.
//
// Secrets never reach logs or errors: the e2ee types never print them and
// this file logs only IDs.

// LocalStore holds node-local values that are never synced: epoch secrets
// (sealed at rest) and decrypted plaintext. crdt/badgerstore implements it;
// MemLocal is the in-memory twin.
type LocalStore interface {
	PutLocal(k, v []byte) error
	GetLocal(k []byte) ([]byte, error) // crdt.ErrNotFound when absent
	DeleteLocal(k []byte) error        // for real (no copy left in the store)
	ScanLocal(prefix []byte, fn func(k, v []byte) bool) error
}

// The stores a node runs on keep node-local values.
var (
	_ LocalStore = (*badgerstore.Store)(nil)
	_ LocalStore = (*crdt.MemStore)(nil)
	_ LocalStore = (*MemLocal)(nil)
)

// MemLocal is a LocalStore in memory (tests, simulations).
type MemLocal struct {
	mu sync.Mutex
	m  map[string][]byte // guarded by mu
}

// NewMemLocal makes an empty MemLocal.
func NewMemLocal() *MemLocal { return &MemLocal{m: map[string][]byte{}} }

// PutLocal implements LocalStore.
func (s *MemLocal) PutLocal(k, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[string(k)] = bytes.Clone(v)
	return nil
}

// GetLocal implements LocalStore.
func (s *MemLocal) GetLocal(k []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[string(k)]
	if !ok {
		return nil, crdt.ErrNotFound
	}
	return bytes.Clone(v), nil
}

// DeleteLocal implements LocalStore.
func (s *MemLocal) DeleteLocal(k []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, string(k))
	return nil
}

// ScanLocal implements LocalStore.
func (s *MemLocal) ScanLocal(prefix []byte, fn func(k, v []byte) bool) error {
	s.mu.Lock()
	var keys []string
	for k := range s.m {
		if bytes.HasPrefix([]byte(k), prefix) {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	slices.Sort(keys)
	for _, k := range keys {
		v, err := s.GetLocal([]byte(k))
		if err != nil {
			continue
		}
		if !fn([]byte(k), v) {
			return nil
		}
	}
	return nil
}

// Each calls fn with every key and value (tests search them for markers).
func (s *MemLocal) Each(fn func(k, v []byte)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		fn([]byte(k), v)
	}
}

// Local keys: "k/" room epoch -> sealed epoch secret; "p/" event -> plaintext.
func secretKey(room crdt.RoomID, id e2ee.EpochID) []byte {
	return append(append([]byte("k/"), room...), id[:]...)
}
func plainKey(id crdt.EventID) []byte { return append([]byte("p/"), id...) }

// Labels of node-local key derivations.
const (
	labelKEMFromDevice = "parley/v1/local/kem-from-device" // fallback KEM seed for replicas given none
	labelAtRest        = "parley/v1/local/at-rest"         // sealing of stored epoch secrets
)

// KeyOptions configure the engine's end-to-end encryption.
type KeyOptions struct {
	// KEM is the device's KEM key. Nil derives one from the device key
	// (HKDF, label parley/v1/local/kem-from-device), for tests and
	// simulations that keep no identity file; the daemon passes the key
	// from its identity file.
	KEM *e2ee.KEMSecretKey
	// Local keeps epoch secrets and plaintext; nil: the engine's store,
	// which must then implement LocalStore (no silent fallback to memory:
	// secrets kept only in memory would be lost by a restart).
	Local LocalStore
	// Policy is the periodic rotation rule; zero: e2ee.DefaultRotationPolicy.
	Policy e2ee.RotationPolicy
	// Rand supplies secrets and nonces; nil: crypto/rand.
	Rand io.Reader
	// Seed seeds the healing back-off jitter.
	Seed uint64
}

// keyring is the engine's key state; the engine goroutine owns it.
type keyring struct {
	me     e2ee.DeviceKEM
	recRaw []byte
	rec    *e2ee.KEMRecord
	keys   *e2ee.MemKeyStore
	local  LocalStore
	atRest cipher.AEAD
	rand   io.Reader
	policy e2ee.RotationPolicy
	jitter *rand.Rand

	unwritten map[crdt.EventID][]byte // plaintext the driver has not written yet (Ready.Plain)
}

func newKeyring(ident *crdt.Identity, o KeyOptions) (*keyring, error) {
	kem := o.KEM
	if kem == nil {
		seed, err := hkdf.Key(sha256.New, ident.Device.Seed(), nil, labelKEMFromDevice, e2ee.KEMSeedSize)
		if err != nil {
			return nil, err
		}
		if kem, err = e2ee.KEMSecretKeyFromSeed(seed); err != nil {
			return nil, err
		}
	}
	rec, err := e2ee.SignKEMRecord(ident.Device, kem.Public(), 0)
	if err != nil {
		return nil, fmt.Errorf("sign kem record: %w", err)
	}
	raw, err := rec.Marshal()
	if err != nil {
		return nil, err
	}
	k, err := hkdf.Key(sha256.New, kem.Seed(), nil, labelAtRest, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, err
	}
	kr := &keyring{
		me: e2ee.DeviceKEM{Device: ident.Device.Public(), Seq: 0, Key: kem}, rec: rec, recRaw: raw,
		keys: e2ee.NewMemKeyStore(), local: o.Local, atRest: aead, rand: o.Rand, policy: o.Policy,
		jitter: rand.New(rand.NewPCG(o.Seed, 0x6b657973)),
	}
	if kr.rand == nil {
		kr.rand = defaultRand
	}
	if kr.policy == (e2ee.RotationPolicy{}) {
		kr.policy = e2ee.DefaultRotationPolicy
	}
	return kr, kr.load()
}

// load reads the stored epoch secrets.
func (kr *keyring) load() error {
	var ferr error
	err := kr.local.ScanLocal([]byte("k/"), func(k, v []byte) bool {
		const idLen = 36
		if len(k) != 2+idLen+32 {
			return true
		}
		room := crdt.RoomID(k[2 : 2+idLen])
		n := chacha20poly1305.NonceSizeX
		if len(v) < n {
			ferr = errors.New("stored epoch secret is damaged")
			return false
		}
		secret, err := kr.atRest.Open(nil, v[:n], v[n:], k)
		if err != nil {
			ferr = errors.New("stored epoch secret does not open (wrong device key?)")
			return false
		}
		key, err := e2ee.EpochKeyFromSecret(room, secret)
		clear(secret)
		if err != nil {
			ferr = err
			return false
		}
		kr.keys.Put(key)
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("load epoch keys: %w", err)
	}
	return nil
}

// held returns the key of an epoch this device holds.
func (kr *keyring) held(room crdt.RoomID, id e2ee.EpochID) *e2ee.EpochKey {
	k, err := kr.keys.Get(room, id)
	if err != nil {
		return nil
	}
	return k
}

// keep holds k and asks the driver to persist it, sealed at rest, before
// any commit that follows (Ready.Keep): no event under an epoch is
// committed or published before its secret is on disk (docs/design.md
// §5.6 C29). ev is the event that brought the key to this device (gain),
// or empty for a key this step made (newRotation), which the room's local
// proposal drops again if its commit fails.
func (e *Engine) keep(room crdt.RoomID, rc *roomCtl, k *e2ee.EpochKey, ev crdt.EventID) error {
	kr := e.kr
	if kr.held(k.Room(), k.ID()) != nil {
		k.Destroy()
		return nil
	}
	key := secretKey(k.Room(), k.ID())
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := io.ReadFull(kr.rand, nonce); err != nil {
		return fmt.Errorf("read randomness: %w", err)
	}
	secret := k.Secret()
	sealed := kr.atRest.Seal(nonce, nonce, secret, key)
	clear(secret)
	if err := kr.keys.Put(k); err != nil {
		return err
	}
	if ev == "" {
		p := e.localProposal(room, rc)
		p.kept = append(p.kept, k.ID())
	}
	e.out.Keep = append(e.out.Keep, KeyWrite{Room: room, Epoch: k.ID(), Event: ev, Key: key, Value: sealed, bg: e.performing})
	return nil
}

// keyFailed takes back a key whose secret the driver could not persist: it
// is no longer held, the local proposals of its room fail (they may seal
// under it or carry it), and a key opened from an event is opened again
// by retryLocal.
func (e *Engine) keyFailed(w KeyWrite, err error) {
	e.kr.keys.Destroy(w.Room, w.Epoch)
	e.failLocal(w.Room, err)
	if w.Event != "" {
		e.log.Warn("keep epoch key", "room", w.Room, "epoch", w.Epoch, "err", err)
		e.rekey = append(e.rekey, keysRedo{w.Room, w.Event})
		if rc := e.rooms[w.Room]; rc != nil {
			rc.keys.dirty = true
		}
		e.retryLater()
	}
}

// plaintext returns what this node decrypted of an event.
func (kr *keyring) plaintext(id crdt.EventID) ([]byte, bool) {
	if b, ok := kr.unwritten[id]; ok {
		return b, true
	}
	b, err := kr.local.GetLocal(plainKey(id))
	return b, err == nil
}

// roomKeys is the engine's per-room key bookkeeping.
type roomKeys struct {
	waiting map[e2ee.EpochID][]crdt.EventID // content events whose epoch this device lacks
	healAt  time.Time                       // when a scheduled healing re-check is due (zero: none)
	dirty   bool                            // membership, devices or epochs changed: check healing
	profile bool                            // this user's profile waits for a key to be sealed under
}

// profileWhenKeyed publishes this user's (sealed) profile once this device
// holds an admissible epoch, so that a joiner does not rotate just to
// publish its display name.
func (e *Engine) profileWhenKeyed(room crdt.RoomID, rc *roomCtl) {
	if !rc.keys.profile || rc.room == nil || rc.room.MembershipOf(e.ident.User) != rooms.Join {
		return
	}
	for _, ep := range rc.room.AdmissibleEpochs(nil) {
		if e.kr.held(room, ep.ID) != nil {
			rc.keys.profile = false
			if err := e.publishProfile(room, rc); err != nil {
				e.log.Warn("publish profile", "room", room, "err", err)
				rc.keys.profile = true // again after the next commit
			}
			return
		}
	}
}

// keysAfter handles an event the room accepted: open what is wrapped to
// this device, decrypt content, and note changes that may need healing.
func (e *Engine) keysAfter(room crdt.RoomID, rc *roomCtl, ev *crdt.Event, loading bool) {
	r := rc.room
	if r == nil || !r.Encrypted() || !r.Accepted(ev.ID) {
		return
	}
	rot, fwd := r.KeysOf(ev.ID)
	var got *e2ee.EpochKey
	var err error
	switch {
	case rot != nil && e.kr.held(room, rot.Epoch) == nil:
		got, err = rot.Open(e.kr.me)
	case fwd != nil && e.kr.held(room, fwd.Epoch) == nil:
		got, err = fwd.Open(e.kr.me)
	}
	if err != nil && !errors.Is(err, e2ee.ErrNoKey) {
		e.log.Warn("unwrap epoch key", "room", room, "event", ev.ID, "err", err)
	}
	if got != nil {
		e.keyEvent = ev.ID
		e.gain(room, rc, got)
		e.keyEvent = ""
	}
	if rooms.Sealed(ev.Type) {
		e.decrypt(room, rc, ev, loading)
	}
	switch ev.Type {
	case rooms.TypeMember, rooms.TypeDevice, rooms.TypeRotate, rooms.TypeKeyFwd:
		rc.keys.dirty = true
	}
}

// gain keeps a newly opened epoch key, follows back-links to older epochs,
// and decrypts the events that waited for any of them.
func (e *Engine) gain(room crdt.RoomID, rc *roomCtl, k *e2ee.EpochKey) {
	queue := []*e2ee.EpochKey{k}
	for len(queue) > 0 {
		k := queue[0]
		queue = queue[1:]
		id := k.ID()
		if e.kr.held(room, id) != nil {
			k.Destroy()
			continue
		}
		if err := e.keep(room, rc, k, e.keyEvent); err != nil {
			e.log.Warn("keep epoch key", "room", room, "epoch", id, "err", err)
			e.keyFault = err
			continue
		}
		if rot := rc.room.RotationOf(id); rot != nil && rot.Backlink != nil {
			older, err := rot.OpenBacklink(e.kr.held(room, id))
			if err != nil {
				e.log.Warn("open back-link", "room", room, "epoch", id, "err", err)
			}
			queue = append(queue, older...)
		}
		waiting := rc.keys.waiting[id]
		delete(rc.keys.waiting, id)
		for _, eid := range waiting {
			s, err := e.store.Get(eid)
			if err != nil {
				continue
			}
			e.decrypt(room, rc, s.Event, false)
			e.timelineReread(room, rc, s.Event)
			e.notify(room, rc, s.Event) // watchers saw it sealed: show it readable
		}
	}
}

// decrypt opens a content event's body and keeps the plaintext locally;
// without the key, the event waits for it.
func (e *Engine) decrypt(room crdt.RoomID, rc *roomCtl, ev *crdt.Event, loading bool) {
	if ev.Body == nil || rc.room.Redacted(ev.ID) {
		return
	}
	if loading {
		if _, ok := e.kr.plaintext(ev.ID); ok {
			return
		}
	}
	h, err := e2ee.EventHeader(ev)
	if err != nil {
		return
	}
	k := e.kr.held(room, h.Epoch)
	if k == nil {
		if rc.keys.waiting == nil {
			rc.keys.waiting = map[e2ee.EpochID][]crdt.EventID{}
		}
		rc.keys.waiting[h.Epoch] = append(rc.keys.waiting[h.Epoch], ev.ID)
		return
	}
	pt, err := e.openSealed(k, h, ev)
	if err != nil {
		e.log.Warn("undecryptable event", "room", room, "event", ev.ID, "err", err)
		return
	}
	e.indexMessage(room, rc, ev, pt)
	if e.kr.unwritten == nil {
		e.kr.unwritten = map[crdt.EventID][]byte{}
	}
	e.kr.unwritten[ev.ID] = pt
	e.out.Plain = append(e.out.Plain, PlainWrite{room, ev.ID})
}

// plainFailed handles plaintext the driver could not write: the event is
// decrypted again by retryLocal.
func (e *Engine) plainFailed(w PlainWrite, err error) {
	e.log.Warn("store plaintext", "room", w.Room, "event", w.Event, "err", err)
	e.rekey = append(e.rekey, keysRedo{w.Room, w.Event})
	e.retryLater()
}

// prepare drafts an event by this node in rc: parents, seq, auth refs.
func (e *Engine) prepare(rc *roomCtl, typ string, skey *string) crdt.Draft {
	d := rc.log.Prepare(e.ident.Device.Public(), e.now().UnixMilli(), crdt.Draft{Type: typ, StateKey: skey})
	d.Auth = rc.room.AuthRefsAt(d.Prev, e.ident.User, typ, skey)
	return d
}

// commit signs a draft, takes the event in and publishes it.
func (e *Engine) commit(room crdt.RoomID, rc *roomCtl, d crdt.Draft) (*crdt.Event, error) {
	d.SignBodyLen = d.SignBodyLen || rc.room.BodyLenAt(d.Prev) // the room limits bytes (docs/protocol.md §5)
	ev, err := crdt.Sign(e.ident, d)
	if err != nil {
		return nil, err
	}
	if why := e.ownOverBytes(room, ev); why != "" {
		return nil, errorf(api.KindPermission, "%s; wait a minute", why)
	}
	if e.sealedPlain != nil { // until advance decrypts and writes it (Ready.Plain)
		if e.kr.unwritten == nil {
			e.kr.unwritten = map[crdt.EventID][]byte{}
		}
		e.kr.unwritten[ev.ID] = slices.Clone(e.sealedPlain)
	}
	if err := e.add(room, rc, "", true, ev); err != nil {
		return nil, err
	}
	if st, ok := rc.log.Status(ev.ID); !ok || st != crdt.StatusAccepted {
		return nil, fmt.Errorf("own event %s was not accepted", ev.ID)
	}
	_, held := rc.held[ev.ID] // on heads above a hole the room waits to fill: judged once it is (roomwait.go)
	if ok, why := rc.room.Visible(ev.ID); !held && !ok && !rc.room.Accepted(ev.ID) {
		return nil, errorf(api.KindPermission, "own event refused: %s", why)
	}
	e.out.Publish = append(e.out.Publish, Published{room, ev})
	return ev, nil
}

// maxBacklinked bounds the epochs a `shared` room's rotation back-links.
const maxBacklinked = 8

// newRotation makes a rotation to the given member devices and keeps its
// key (persisted before the carrying event exists). barrier: no back-link.
func (e *Engine) newRotation(room crdt.RoomID, rc *roomCtl, prev []crdt.EventID, reason e2ee.Reason, to []*e2ee.KEMRecord, barrier bool) (*e2ee.Rotation, []byte, error) {
	var sup []*e2ee.EpochKey
	if !barrier {
		var eps []rooms.EpochInfo
		if rc.room.History() == rooms.HistoryJoined {
			eps = rc.room.AdmissibleEpochs(prev) // never older than a join barrier
		} else {
			eps = rc.room.RecentEpochs(prev, maxBacklinked)
		}
		for _, ep := range eps {
			if k := e.kr.held(room, ep.ID); k != nil && len(sup) < maxBacklinked {
				sup = append(sup, k)
			}
		}
	}
	rot, k, err := e2ee.Rotate(e.kr.rand, e2ee.RotateParams{Room: room, Sender: e.ident.Device.Public(), Reason: reason, Recipients: to, Supersedes: sup})
	if err != nil {
		return nil, nil, fmt.Errorf("rotate: %w", err)
	}
	b, err := rot.Marshal()
	if err != nil {
		k.Destroy()
		return nil, nil, err
	}
	if len(b) > crdt.MaxKeyEventSize-4096 {
		k.Destroy()
		return nil, nil, errorf(api.KindInvalid, "room has too many devices (%d) for one rotation event", len(to))
	}
	if err := e.keep(room, rc, k, ""); err != nil {
		return nil, nil, err
	}
	return rot, b, nil
}

// rotateNow authors a `rotate` event to the member devices at its parents.
func (e *Engine) rotateNow(room crdt.RoomID, rc *roomCtl, reason e2ee.Reason) (*e2ee.EpochKey, error) {
	d := e.prepare(rc, rooms.TypeRotate, nil)
	rot, b, err := e.newRotation(room, rc, d.Prev, reason, rc.room.MemberDevices(d.Prev), false)
	if err != nil {
		return nil, err
	}
	d.Body, d.Epoch = b, rot.Epoch[:]
	if _, err := e.commit(room, rc, d); err != nil {
		return nil, err
	}
	return e.kr.held(room, rot.Epoch), nil
}

// sendKey picks the epoch a content event with parents prev is sealed
// under: the newest admissible epoch held (docs/design.md §5.3), unless
// it is due for periodic rotation; otherwise it rotates first and reports
// rotated (the caller drafts again on the new heads).
func (e *Engine) sendKey(room crdt.RoomID, rc *roomCtl, prev []crdt.EventID) (k *e2ee.EpochKey, rotated bool, err error) {
	adm := rc.room.AdmissibleEpochs(prev)
	reason := e2ee.ReasonLeave
	if len(adm) > 0 {
		reason = e2ee.ReasonMerge // admissible epochs exist, none held yet
	}
	for _, ep := range adm {
		if k := e.kr.held(room, ep.ID); k != nil {
			if e.kr.policy.Due(ep.Uses, ep.TS, e.now().UnixMilli()) {
				reason = e2ee.ReasonPeriodic
				break
			}
			return k, false, nil
		}
	}
	k, err = e.rotateNow(room, rc, reason)
	return k, true, err
}

// authorSealed authors a content event in an encrypted room.
func (e *Engine) authorSealed(room crdt.RoomID, rc *roomCtl, typ string, skey *string, plaintext []byte) (*crdt.Event, error) {
	d := e.prepare(rc, typ, skey)
	k, rotated, err := e.sendKey(room, rc, d.Prev)
	if err != nil {
		return nil, err
	}
	if rotated {
		d = e.prepare(rc, typ, skey)
	}
	id := k.ID()
	d.Epoch = id[:]
	h, err := e2ee.DraftHeader(e.ident.User, e.ident.Device.Public(), d)
	if err != nil {
		return nil, err
	}
	if d.Body, err = k.Seal(e.kr.rand, h, plaintext); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	e.sealedPlain = plaintext // readable within the step (commit)
	defer func() { e.sealedPlain = nil }()
	return e.commit(room, rc, d)
}

// announceDevice authors this device's `device` event in an encrypted room
// unless it is announced already; in a `joined` room every announcement
// (after each join) carries a barrier rotation.
func (e *Engine) announceDevice(room crdt.RoomID, rc *roomCtl, afterJoin bool) error {
	if rc.room == nil || !rc.room.Encrypted() {
		return nil
	}
	joined := rc.room.History() == rooms.HistoryJoined
	me := e.ident.Device.Public()
	if rec, _ := rc.room.DeviceOf(me); rec != nil && !(joined && afterJoin) {
		return nil
	}
	skey := me.String()
	body := rooms.DeviceBody{KEM: e.kr.recRaw}
	if err := rc.room.Check(e.ident.User, rooms.TypeDevice, &skey, rooms.Encode(body)); err != nil {
		return err
	}
	d := e.prepare(rc, rooms.TypeDevice, &skey)
	if joined {
		to := slices.DeleteFunc(rc.room.MemberDevices(d.Prev), func(r *e2ee.KEMRecord) bool { return r.Device == me })
		to = append(to, e.kr.rec)
		rot, b, err := e.newRotation(room, rc, d.Prev, e2ee.ReasonJoinBarrier, to, true)
		if err != nil {
			return err
		}
		body.Rotation, d.Epoch = b, rot.Epoch[:]
	}
	d.Body = rooms.Encode(body)
	_, err := e.commit(room, rc, d)
	return err
}

// startEncryption is the creator's first key work in a new encrypted room.
func (e *Engine) startEncryption(room crdt.RoomID, rc *roomCtl) error {
	if err := e.announceDevice(room, rc, true); err != nil {
		return err
	}
	if rc.room.History() == rooms.HistoryJoined {
		return nil // the announcement's barrier is the first epoch
	}
	_, err := e.rotateNow(room, rc, e2ee.ReasonCreate)
	return err
}

// removalWithRotation authors a kick or ban of a joined member in an
// encrypted room, carrying the next epoch, wrapped to the member devices
// without the target's.
func (e *Engine) removalWithRotation(room crdt.RoomID, rc *roomCtl, target crdt.UserID, mb rooms.MemberBody) (*crdt.Event, error) {
	key := target.String()
	if err := rc.room.Check(e.ident.User, rooms.TypeMember, &key, rooms.Encode(mb)); err != nil {
		return nil, err
	}
	d := e.prepare(rc, rooms.TypeMember, &key)
	to := slices.DeleteFunc(rc.room.MemberDevices(d.Prev), func(r *e2ee.KEMRecord) bool {
		_, u := rc.room.DeviceOf(r.Device)
		return u == target
	})
	reason := e2ee.ReasonKick
	if mb.Membership == rooms.Ban {
		reason = e2ee.ReasonBan
	}
	rot, b, err := e.newRotation(room, rc, d.Prev, reason, to, false)
	if err != nil {
		return nil, err
	}
	mb.Rotation, d.Epoch = b, rot.Epoch[:]
	d.Body = rooms.Encode(mb)
	return e.commit(room, rc, d)
}

// RevokeDevice removes a device of this user from every encrypted room
// this user is joined in where the device is a member device: a `device`
// removal carrying a rotation that excludes it (docs/design.md §5.4 e).
// It returns the removal events. The device must be another device of
// this user.
func (e *Engine) RevokeDevice(ctx context.Context, dev crdt.DeviceID) ([]string, error) {
	if dev == e.ident.Device.Public() {
		return nil, errorf(api.KindInvalid, "a device cannot revoke itself; revoke it from another device of this user")
	}
	var out []string
	err := e.do(ctx, func() error {
		for id, rc := range e.rooms {
			r := rc.room
			if r == nil || !r.Encrypted() || r.MembershipOf(e.ident.User) != rooms.Join {
				continue
			}
			rec, user := r.DeviceOf(dev)
			if rec == nil {
				continue
			}
			if user != e.ident.User {
				return errorf(api.KindPermission, "device %s belongs to another user", dev)
			}
			skey := dev.String()
			body := rooms.DeviceBody{Removed: true}
			d := e.prepare(rc, rooms.TypeDevice, &skey)
			to := slices.DeleteFunc(r.MemberDevices(d.Prev), func(x *e2ee.KEMRecord) bool { return x.Device == dev })
			rot, b, err := e.newRotation(id, rc, d.Prev, e2ee.ReasonDeviceRemoved, to, false)
			if err != nil {
				return err
			}
			body.Rotation, d.Epoch = b, rot.Epoch[:]
			d.Body = rooms.Encode(body)
			ev, err := e.commit(id, rc, d)
			if err != nil {
				return err
			}
			out = append(out, ev.ID.String())
		}
		return nil
	})
	return out, err
}

// heal forwards admissible epochs to member devices that lack them, as
// the pure policy rooms.Heal decides: the preferred healer at once, the
// others after a back-off (a forced check), and nobody while the copy has
// gaps, until they close or a back-off expires (a gap that never closes,
// such as a forged parent, must not stop healing).
func (e *Engine) heal(room crdt.RoomID, rc *roomCtl, force bool) {
	rc.keys.dirty = false
	r := rc.room
	if r == nil || !r.Encrypted() || r.MembershipOf(e.ident.User) != rooms.Join {
		return
	}
	now := e.now()
	in := rooms.HealInput{
		Me: e.ident.Device.Public(), Devices: r.MemberDevices(nil), Force: force,
		Whole: rc.log.MissingCount() == 0 && rc.log.Pending() == 0,
		Now:   now.UnixMilli(), Jitter: e.kr.jitter.Int64N(rooms.HealJitterMS),
	}
	held := map[e2ee.EpochID]*e2ee.EpochKey{}
	if in.Whole || force {
		for _, ep := range r.AdmissibleEpochs(nil) {
			if k := e.kr.held(room, ep.ID); k != nil {
				held[ep.ID] = k
				in.Epochs = append(in.Epochs, ep)
			}
		}
	}
	plan := rooms.Heal(in)
	if plan.Gap {
		rc.keys.dirty = true
	}
	for _, f := range plan.Forward {
		if err := e.forward(room, rc, held[f.Epoch], f.To); err != nil {
			e.log.Warn("key forward", "room", room, "epoch", f.Epoch, "err", err)
			rc.keys.dirty = true // again after the next commit
		}
	}
	if plan.At != 0 {
		e.healLater(room, rc, now.Add(time.Duration(plan.At-in.Now)*time.Millisecond))
	}
}

// healLater schedules a forced healing check of the room at `at`, unless
// one is scheduled already.
func (e *Engine) healLater(room crdt.RoomID, rc *roomCtl, at time.Time) {
	if !rc.keys.healAt.IsZero() {
		return
	}
	rc.keys.healAt = at
	e.out.Timers = append(e.out.Timers, Timer{Kind: TimerHeal, Room: room, At: at})
}

// forward authors a key forward of k to devices.
func (e *Engine) forward(room crdt.RoomID, rc *roomCtl, k *e2ee.EpochKey, to []*e2ee.KEMRecord) error {
	for len(to) > 0 {
		n := min(len(to), 40) // one forward event stays well under the event size limit
		f, err := e2ee.Forward(e.ident.Device.Public(), k, to[:n])
		if err != nil {
			return err
		}
		b, err := f.Marshal()
		if err != nil {
			return err
		}
		d := e.prepare(rc, rooms.TypeKeyFwd, nil)
		id := k.ID()
		d.Body, d.Epoch = b, id[:]
		if _, err := e.commit(room, rc, d); err != nil {
			return err
		}
		to = to[n:]
	}
	return nil
}

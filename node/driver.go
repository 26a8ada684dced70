package node

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
)

// This file is the engine's driver: the goroutine, the clock's timers and
// the networking callbacks, and every write: commits, epoch secrets,
// plaintext, the invite book, purges, preferences. The engine core (engine.go, keys.go,
// content.go, governance.go, membership.go, devices.go, invites.go,
// host.go, ready.go, prefs.go) runs no goroutine, sets no timer, reads no
// wall clock, draws no global randomness and writes nothing
// (TestEngineCoreIsPure); it fills a Ready, which perform carries out
// after each step.

// defaultRand is the randomness of an engine built without KeyOptions.Rand.
var defaultRand io.Reader = cryptorand.Reader

// wallClock is the clock of an engine whose tests set none.
var wallClock = time.Now

// SetEffects wires the engine's outputs; call before Serve.
func (e *Engine) SetEffects(fx Effects) { e.fx = fx }

// Serve runs the engine until ctx is done.
func (e *Engine) Serve(ctx context.Context) error {
	defer close(e.stopped)
	for id, rc := range e.rooms {
		e.track(id)
		if rc.keys.dirty {
			e.heal(id, rc, false)
		}
	}
	e.perform()
	for {
		select {
		case <-ctx.Done():
			for w := range e.watchers {
				close(w.ch)
			}
			e.watchers = nil
			return nil
		case fn := <-e.calls:
			fn()
		}
	}
}

// do runs fn on the engine goroutine as one step, performs the step's
// Ready, and waits for it. It returns ErrClosed once ctx is done or the
// engine has stopped, so no caller waits on a stopped engine.
func (e *Engine) do(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	select {
	case e.calls <- func() {
		err := fn()
		if perr := e.perform(); err == nil {
			err = perr
		}
		done <- err
	}:
	case <-ctx.Done():
		return ErrClosed
	case <-e.stopped:
		return ErrClosed
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ErrClosed
	case <-e.stopped:
		return ErrClosed
	}
}

// perform carries out the Ready the last step filled, in its documented
// order (ready.go), and empties it: the writes ahead (preferences, epoch
// secrets), then the proposed commits and the step's local proposals (each
// followed by the core's advance, or its reject when the store refused
// the batch; an advance may ask for more of both), then the purges and
// the effects. It runs on the engine goroutine; the effects must not
// block. It returns the errors of failed writes and refused commits.
func (e *Engine) perform() error {
	rd := &e.out
	var errs []error
	e.performing = true
	defer func() { e.performing = false }()
	for {
		errs = append(errs, e.writeAhead())
		if len(rd.Propose) == 0 {
			rd.Propose = append(rd.Propose, e.takeLocal()...)
		}
		if len(rd.Propose) == 0 {
			break
		}
		p := rd.Propose[0]
		rd.Propose = rd.Propose[1:]
		err := e.commitProposal(p)
		if err != nil && p.bg {
			e.log.Warn("commit of background authoring", "room", p.Room, "err", err)
			err = nil
		}
		if !slices.Contains(errs, err) { // a failed write ahead fails several proposals
			errs = append(errs, err)
		}
	}
	e.made = nil
	errs = append(errs, e.writeBook())
	if ws := rd.Plain; len(ws) > 0 {
		rd.Plain = rd.Plain[:0]
		e.writePlain(ws)
	}
	if ids := rd.Purge; len(ids) > 0 {
		rd.Purge = nil
		e.purge(ids)
	}
	e.handIndex()
	if rd.empty() {
		rd.reset()
		return errors.Join(errs...)
	}
	if e.onReady != nil {
		e.onReady(rd)
	}
	fx := e.fx
	for _, id := range rd.Track {
		if fx.Track != nil {
			fx.Track(id)
		}
	}
	for _, p := range rd.Publish {
		if fx.Publish != nil {
			fx.Publish(p.Room, p.Event)
		}
	}
	for _, h := range rd.Heads {
		if fx.Heads != nil {
			fx.Heads(h.Room, h.Heads)
		}
	}
	for _, f := range rd.Fetch {
		if fx.Missing != nil {
			fx.Missing(f.Room, f.IDs, f.From)
		}
	}
	for _, f := range rd.Refused {
		if fx.Refused != nil {
			fx.Refused(f.Room, f.From)
		}
	}
	for _, in := range rd.Invites {
		if fx.Invited != nil {
			fx.Invited(in.Room, in.Target, in.Create, in.Invite, in.Name)
		}
	}
	for _, a := range rd.Accepted {
		if fx.Ingested != nil {
			fx.Ingested(a.Room, len(a.Events))
		}
		if fx.Accepted != nil {
			fx.Accepted(a.Room, a.Events, a.From)
		}
	}
	for _, r := range rd.Rejected {
		if fx.Rejected != nil {
			fx.Rejected(r.Room, r.Reason, r.N)
		}
	}
	for _, w := range rd.Watch {
		e.deliver(w.Room, w.Item)
	}
	for _, t := range rd.Timers {
		e.schedule(t)
	}
	rd.reset()
	return errors.Join(errs...)
}

// purge deletes the bodies and plaintext of redacted events; what fails
// goes back to the core for a retry (deferPurge).
func (e *Engine) purge(ids []crdt.EventID) {
	for i, id := range ids {
		if err := e.purgeOne(id); err != nil {
			e.deferPurge(ids[i:], err)
			return
		}
	}
}

func (e *Engine) purgeOne(id crdt.EventID) error {
	if err := e.unindex(id); err != nil { // reads the words from the body or plaintext purged here
		return err
	}
	if err := e.store.PurgeBody(id); err != nil && !errors.Is(err, crdt.ErrNotFound) {
		return fmt.Errorf("purge redacted body: %w", err)
	}
	if err := e.kr.local.DeleteLocal(plainKey(id)); err != nil {
		return fmt.Errorf("purge redacted plaintext: %w", err)
	}
	return nil
}

// commitProposal commits a proposal's batch and advances the core, or
// rejects the proposal (the core as before its input) when the store
// refused the batch. When the batch reached the store although Commit
// failed (its sync, or the heads' transaction of a split batch), memory
// follows the store and the batch is committed once more (an idempotent
// rewrite of the heads and the sync); the error is returned only if that
// fails too.
func (e *Engine) commitProposal(p *Proposal) error {
	if p.err != nil { // a write it depends on failed (writeAhead)
		e.reject(p, p.err)
		return p.err
	}
	if p.local && len(p.Batch.Events) == 0 { // nothing new to commit
		if len(p.kept) > 0 {
			e.reject(p, nil) // keys made for events that were never authored
		} else {
			e.finish(p)
		}
		return nil
	}
	err := e.store.Commit(p.Batch)
	if err == nil {
		e.advance(p, true)
		return nil
	}
	// Part of the batch may be stored (a split commit): the log no longer
	// knows every event the store holds of the room (roomCtl.whole).
	p.rc.whole, p.rc.wholeKnown = false, true
	p.Batch.New = false
	if !e.landed(p.Batch) {
		e.reject(p, err)
		return commitError(err)
	}
	e.log.Warn("commit failed after its events were stored; writing again", "room", p.Room, "err", err)
	if err := e.store.Commit(p.Batch); err != nil {
		e.advance(p, false)
		return commitError(err)
	}
	e.advance(p, true)
	return nil
}

// writeAhead performs the writes that must precede the step's commits:
// the preferences, then the epoch secrets (each before any event sealed
// under it or carrying it is committed, so a crash between the two loses
// no secret of a stored event). When one fails, the core goes back
// (prefsFailed, keyFailed) and the local proposals that depended on it
// fail with it.
func (e *Engine) writeAhead() error {
	rd := &e.out
	var errs []error
	if rd.Prefs {
		rd.Prefs = false
		err := e.prefs.save()
		if e.onWrite != nil {
			e.onWrite("prefs", "", err)
		}
		if err != nil {
			err = fmt.Errorf("save preferences: %w", err)
			e.prefsFailed(err)
			errs = append(errs, err)
		}
		e.prefsUndo = nil
	}
	ws := rd.Keep
	rd.Keep = nil
	for _, w := range ws {
		err := e.kr.local.PutLocal(w.Key, w.Value)
		if e.onWrite != nil {
			e.onWrite("keep", w.Room, err)
		}
		if err != nil {
			err = fmt.Errorf("store epoch key: %w", err)
			e.keyFailed(w, err)
			if w.Event == "" && !w.bg { // made by the step's command: it fails
				errs = append(errs, err)
			}
		}
	}
	clear(ws)
	return errors.Join(errs...)
}

// writeBook writes the step's changes of the invite book (Ready.Book),
// after its commits, in order. At the first that fails it stops: the core
// takes that change back with all those after it (inviteFailed), so the
// book in memory is what the store holds.
func (e *Engine) writeBook() error {
	ws := e.out.Book
	e.out.Book = nil
	for i, w := range ws {
		err := writeInvite(e.kr.local, w)
		if e.onWrite != nil {
			what := "invite"
			if w.Delete {
				what = "invite-delete"
			}
			id, _ := crdt.ParseID(w.Room)
			e.onWrite(what, id, err)
		}
		if err != nil {
			return e.inviteFailed(ws[i:], fmt.Errorf("store invite: %w", err))
		}
	}
	return nil
}

// writeInvite performs one change of the invite book.
func writeInvite(local LocalStore, w InviteWrite) error {
	if w.Delete {
		return local.DeleteLocal(inviteKey(w.Room))
	}
	return local.PutLocal(inviteKey(w.Room), w.Value)
}

// loadInvites reads the pending invites from the local store and moves
// those of an older prefs.json (legacy) into it (at load, before the
// engine runs).
func loadInvites(local LocalStore, legacy []pendingInvite) (*inviteBook, error) {
	b := newInviteBook()
	err := local.ScanLocal([]byte(inviteKeyPrefix), func(_, v []byte) bool {
		b.load(v)
		return true
	})
	if err != nil {
		return nil, err
	}
	for _, p := range legacy {
		ws, _, err := b.add(p)
		if err != nil {
			return nil, err
		}
		for _, w := range ws {
			if err := writeInvite(local, w); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// writePlain writes decrypted plaintext after the commits of the events
// it belongs to; what fails is decrypted again later (plainFailed).
func (e *Engine) writePlain(ws []PlainWrite) {
	if b, ok := e.kr.local.(interface {
		WriteLocal([]crdt.LocalWrite) error
	}); ok && len(ws) > 1 {
		// Many at once (a bulk import's batch): one write batch, and one
		// by one only when it fails, to find which.
		lws := make([]crdt.LocalWrite, 0, len(ws))
		for _, w := range ws {
			if pt, ok := e.kr.unwritten[w.Event]; ok {
				lws = append(lws, crdt.LocalWrite{Key: plainKey(w.Event), Value: pt})
			}
		}
		if b.WriteLocal(lws) == nil {
			for _, w := range ws {
				delete(e.kr.unwritten, w.Event)
			}
			return
		}
	}
	for _, w := range ws {
		pt, ok := e.kr.unwritten[w.Event]
		if !ok {
			continue
		}
		delete(e.kr.unwritten, w.Event)
		if err := e.kr.local.PutLocal(plainKey(w.Event), pt); err != nil { // pt is not cleared: readers may hold it
			e.plainFailed(w, err)
		}
	}
}

// save writes the preferences (the driver's writeAhead). When that fails (a full disk), the
// preferences go back to what was last saved, so memory never runs ahead
// of the file: every caller changes them, saves, and returns the error.
func (p *prefs) save() error {
	if p.path == "" {
		return nil
	}
	if err := writeJSON(p.path, p, 0o600); err != nil {
		back := prefs{path: p.path, saved: p.saved}
		if json.Unmarshal(p.saved, &back) == nil {
			*p = back
		}
		return err
	}
	p.saved, _ = json.Marshal(p)
	return nil
}

// dropPrefsInvites saves the preferences without the invites an older
// version kept there, once loadInvites moved them to the local store (at
// load, before the engine runs).
func dropPrefsInvites(p *prefs) error {
	if len(p.Invites) == 0 {
		return nil
	}
	p.Invites = nil
	if err := p.save(); err != nil {
		return fmt.Errorf("move invites out of preferences: %w", err)
	}
	return nil
}

// landed reports whether every event of a batch whose Commit failed is in
// the store all the same.
func (e *Engine) landed(b crdt.Batch) bool {
	for _, s := range b.Events {
		if ok, err := e.store.Has(s.Event.ID); err != nil || !ok {
			return false
		}
	}
	return true
}

// deliver sends one item to the watchers of its room (or, to one that is
// behind, a resync item in its place: watcher.put).
func (e *Engine) deliver(room crdt.RoomID, it api.WatchItem) {
	for w := range e.watchers {
		if w.room == "" || w.room == room {
			w.put(it)
		}
	}
}

// schedule fires t on the engine goroutine when it is due (on the
// engine's clock), unless the engine stopped first.
func (e *Engine) schedule(t Timer) {
	if e.noTimers {
		return
	}
	time.AfterFunc(max(0, t.At.Sub(e.now())), func() {
		select {
		case e.calls <- func() {
			e.fire(t)
			if err := e.perform(); err != nil {
				e.log.Warn("timer step", "err", err)
			}
		}:
		case <-e.stopped:
		}
	})
}

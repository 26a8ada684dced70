package node

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/importers"
	"github.com/parley-p2p/parley/node/internal/clientfile"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/e2ee"
	"github.com/parley-p2p/parley/rooms/mimi"
	"github.com/parley-p2p/parley/rooms/timeline"
	"golang.org/x/crypto/chacha20poly1305"
)

// Importing another messenger's chat export (`parley import --from`): the
// daemon parses and validates the whole export first (package importers),
// so that a malformed one changes nothing; then it posts each message as a
// MIMI message authored and signed by this user, carrying the original's
// author, time, source and reactions in the parley.imported extension
// (docs/protocol.md §5.2). Replies point at the imported replied-to
// message, edits a source kept become real edits by the importer,
// attachments the export holds become media messages. Every message
// carries a stable import ID; one already in the room is skipped, so a
// second import of the same export adds nothing.
//
// Reactions stay data on the imported message rather than reaction events:
// a reaction event would be the importer's own, and would misattribute
// someone else's reaction to them.

// importChatBatch is how many messages one engine call posts: they are
// signed as a chain and committed in one store write, and watchers are told
// of them after the whole batch (so that the timeline is projected once a
// batch, not once a message).
const importChatBatch = 2000

// maxImportFile bounds one attachment read from an export.
const maxImportFile = 512 << 20

// importChat is the API method import/chat.
func (n *Node) importChat(ctx context.Context, req api.ImportChatReq) (api.ImportChatResp, error) {
	p, done := n.progress.start(req.Progress)
	defer done()
	return n.importChatCounted(ctx, req, p)
}

// importChatCounted is importChat, counting messages done in prog (nil:
// not counted).
func (n *Node) importChatCounted(ctx context.Context, req api.ImportChatReq, prog *progress) (api.ImportChatResp, error) {
	path, err := absPath(req.Path, "export")
	if err != nil {
		return api.ImportChatResp{}, err
	}
	fsys, main, closeFS, err := openExport(path)
	if err != nil {
		return api.ImportChatResp{}, err
	}
	defer closeFS()
	x, err := importers.Parse(req.Format, fsys, main, req.Channel)
	if err != nil {
		return api.ImportChatResp{}, errorf(api.KindInvalid, "%s: %v (nothing was imported)", path, strings.TrimPrefix(err.Error(), "importers: "))
	}
	for _, m := range x.Messages { // validate everything before posting anything
		for _, t := range append([]string{m.Text}, editTexts(m)...) {
			if len(t) > MaxMessage || !validUTF8(t) {
				return api.ImportChatResp{}, errorf(api.KindInvalid, "%s: message %s is longer than %d bytes or not UTF-8 (nothing was imported)", path, m.ID, MaxMessage)
			}
		}
	}
	return n.postImport(ctx, req, x, fsys, prog)
}

func editTexts(m importers.Message) []string {
	out := make([]string, len(m.Edits))
	for i, e := range m.Edits {
		out[i] = e.Text
	}
	return out
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// openExport opens the export at path: a folder, a zip file, or a file
// (then its folder, with the file as the main one).
func openExport(path string) (fs.FS, string, func(), error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", nil, errorf(api.KindNotFound, "no export at %s", path)
		}
		return nil, "", nil, errorf(api.KindInvalid, "cannot read %s: %v", path, clientfile.UnwrapPathErr(err))
	}
	if st.IsDir() {
		return os.DirFS(path), "", func() {}, nil
	}
	if strings.EqualFold(filepath.Ext(path), ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			return nil, "", nil, errorf(api.KindInvalid, "%s: not a readable zip file: %v (nothing was imported)", path, clientfile.UnwrapPathErr(err))
		}
		// Exports are often zipped with their folder at the top: look inside it.
		var fsys fs.FS = zr
		if ents, err := fs.ReadDir(zr, "."); err == nil && len(ents) == 1 && ents[0].IsDir() {
			if sub, err := fs.Sub(zr, ents[0].Name()); err == nil {
				fsys = sub
			}
		}
		return fsys, "", func() { zr.Close() }, nil
	}
	return os.DirFS(filepath.Dir(path)), filepath.Base(path), func() {}, nil
}

// importPost is one message to post: its content before the header is
// known, and the files to attach.
type importPost struct {
	m     *importers.Message
	id    []byte // import ID
	files []importers.Attachment
}

// postImport posts x's messages into the room (made first when asked).
func (n *Node) postImport(ctx context.Context, req api.ImportChatReq, x *importers.Export, fsys fs.FS, prog *progress) (api.ImportChatResp, error) {
	e := n.engine
	resp := api.ImportChatResp{Messages: len(x.Messages)}
	for _, s := range x.Skipped {
		resp.Skipped = append(resp.Skipped, api.ImportSkip{Entry: s.Entry, Reason: s.Reason})
	}
	room := req.Room
	if room == "" {
		name := req.Name
		if name == "" {
			name = x.Name
		}
		if name == "" {
			name = "Imported from " + x.Format
		}
		r, err := e.CreateRoom(ctx, api.RoomCreateReq{Name: truncateText(name, MaxRoomName)})
		if err != nil {
			return resp, err
		}
		room, resp.Created = r.Room, true
	}
	resp.Room = room
	// What earlier imports posted: import ID -> MIMI message ID.
	done := map[string]mimi.MessageID{}
	err := e.do(ctx, func() error {
		id, rc, err := e.roomOf(room)
		if err != nil {
			return err
		}
		if rc.room == nil {
			return errorf(api.KindUnavailable, "room %s is not synced yet", id)
		}
		done = e.importedIDs(id, rc)
		return nil
	})
	if err != nil {
		return resp, err
	}
	mids := map[string]mimi.MessageID{} // source ID -> MIMI message ID
	var posts []importPost
	for i := range x.Messages {
		m := &x.Messages[i]
		iid := importers.ImportID(x.Format, x.Chat, m.ID)
		if mid, ok := done[hex.EncodeToString(iid[:])]; ok {
			mids[m.ID] = mid
			resp.Existing++
			continue
		}
		posts = append(posts, importPost{m: m, id: iid[:]})
	}
	prog.setTotal(len(x.Messages))
	prog.add(resp.Existing)
	// A pipeline over the batches: engine step k takes in batch k-1, whose
	// chain was signed while step k-1 was committed, and builds batch k's
	// bodies and drafts its chain; batch k is then sealed and signed off
	// the engine goroutine while step k commits (two cores: the engine's
	// commit and advance, and the signatures). Step k waits for batch k-1's
	// signatures, so the engine stays one goroutine and the Ready order is
	// that of batches authored one by one.
	var batches []*chatBatch
	for start := 0; start < len(posts); start += importChatBatch {
		batches = append(batches, &chatBatch{posts: posts[start:min(start+importChatBatch, len(posts))]})
	}
	var signing *chatBatch // the batch being signed off the engine goroutine
	defer func() {
		if signing != nil {
			<-signing.signed
		}
	}()
	for k := 0; k <= len(batches); k++ {
		var add, build *chatBatch
		if k > 0 {
			add = batches[k-1]
		}
		if k < len(batches) {
			build = batches[k]
			if err := n.importFiles(fsys, build); err != nil {
				return resp, fmt.Errorf("import after %d of %d new messages: %w", resp.New, len(posts), err)
			}
		}
		if add != nil {
			<-add.signed
			signing = nil
		}
		if build != nil {
			build.signed = make(chan struct{})
		}
		var draftErr error // batch k-1 is in, batch k could not be drafted
		err := e.do(ctx, func() error {
			id, rc, err := e.roomOf(room)
			if err != nil {
				return err
			}
			var bodies importBodies
			if build != nil {
				for i, p := range build.posts {
					if err := e.postImported(id, rc, x, p, build.refs[i], build.thumbs[i], mids, &build.counts, &bodies); err != nil {
						return err
					}
				}
			}
			if add != nil {
				if err := e.authorBatch(id, rc, add.chain); err != nil {
					return err
				}
			}
			if build == nil {
				return nil
			}
			c, err := e.startChain(id, rc, bodies.b)
			if err == nil {
				c.contents = bodies.c
				err = c.detach(id, e.kr.rand)
			}
			if err != nil {
				draftErr = err
				return nil
			}
			build.chain = c
			go func(b *chatBatch, ident *crdt.Identity) { // on its own data only: the chain
				defer close(b.signed)
				b.chain.sign(ident)
			}(build, e.ident)
			return nil
		})
		if err != nil {
			return resp, fmt.Errorf("import after %d of %d new messages: %w", resp.New, len(posts), err)
		}
		if add != nil {
			resp.New, resp.Media, resp.Edits = resp.New+add.counts.New, resp.Media+add.counts.Media, resp.Edits+add.counts.Edits
			resp.MediaMissing += add.counts.MediaMissing
			prog.add(len(add.posts))
		}
		if draftErr != nil {
			return resp, fmt.Errorf("import after %d of %d new messages: %w", resp.New, len(posts), draftErr)
		}
		signing = build
		if n.importStep != nil {
			n.importStep(k)
		}
	}
	return resp, nil
}

// chatBatch is one batch of messages to post: their files, what they
// count, and their chain of events.
type chatBatch struct {
	posts  []importPost
	refs   [][]mimi.MediaRef
	thumbs [][]*mimi.MediaRef
	counts api.ImportChatResp // New, Media, Edits, MediaMissing
	chain  *importChain
	signed chan struct{} // closed once chain is signed
}

// importFiles stores the files of a batch (before the engine is asked).
func (n *Node) importFiles(fsys fs.FS, b *chatBatch) error {
	b.refs, b.thumbs = make([][]mimi.MediaRef, len(b.posts)), make([][]*mimi.MediaRef, len(b.posts))
	for i, p := range b.posts {
		for _, a := range p.m.Attachments {
			if a.Missing {
				b.counts.MediaMissing++
				continue
			}
			if n.media == nil {
				return errorf(api.KindUnavailable, "the media store is not open")
			}
			ref, thumb, err := n.importFile(fsys, a)
			if err != nil {
				return err
			}
			b.refs[i], b.thumbs[i] = append(b.refs[i], ref), append(b.thumbs[i], thumb)
		}
	}
	return nil
}

// importFile stores one attachment of the export.
func (n *Node) importFile(fsys fs.FS, a importers.Attachment) (mimi.MediaRef, *mimi.MediaRef, error) {
	f, err := fsys.Open(a.Path)
	if err != nil {
		return mimi.MediaRef{}, nil, errorf(api.KindInvalid, "attachment %s: %v", a.Path, clientfile.UnwrapPathErr(err))
	}
	b, err := io.ReadAll(io.LimitReader(f, maxImportFile+1))
	f.Close()
	switch {
	case err != nil:
		return mimi.MediaRef{}, nil, errorf(api.KindInvalid, "attachment %s: %v", a.Path, clientfile.UnwrapPathErr(err))
	case len(b) > maxImportFile:
		return mimi.MediaRef{}, nil, errorf(api.KindInvalid, "attachment %s is larger than %d bytes", a.Path, maxImportFile)
	}
	return n.media.AttachFrom(bytes.NewReader(b), int64(len(b)), a.Path, a.Name, false)
}

// importedIDs maps the import IDs of the room's imported messages to their
// MIMI message IDs.
func (e *Engine) importedIDs(room crdt.RoomID, rc *roomCtl) map[string]mimi.MessageID {
	tl := e.timelineOf(room, rc)
	byPos := make(map[timeline.Position]mimi.MessageID, len(tl.mids))
	for mid, pos := range tl.mids {
		byPos[pos] = mid
	}
	out := map[string]mimi.MessageID{}
	for _, m := range tl.proj.Messages() {
		if m.Imported != nil {
			if mid, ok := byPos[m.Pos]; ok {
				out[hex.EncodeToString(m.Imported.ID)] = mid
			}
		}
	}
	return out
}

// postImported authors one imported message (and its files beyond the
// first, and its edits) on the engine goroutine.
func (e *Engine) postImported(room crdt.RoomID, rc *roomCtl, x *importers.Export, p importPost, refs []mimi.MediaRef, thumbs []*mimi.MediaRef, mids map[string]mimi.MessageID, resp *api.ImportChatResp, bodies *importBodies) error {
	m := p.m
	text := m.Text
	for _, a := range m.Attachments {
		if a.Missing {
			text = strings.TrimSpace(text + "\n[file not in the export: " + a.Name + "]")
		}
	}
	im := mimi.Imported{ID: p.id, From: x.Format, Author: truncateText(m.Author, mimi.MaxImportedText),
		AuthorID: truncateText(m.AuthorID, mimi.MaxImportedText), TS: m.Time.UnixMilli()}
	if !m.Edited.IsZero() {
		im.Edited = m.Edited.UnixMilli()
	}
	for _, r := range m.Reactions {
		if len(im.Reactions) == mimi.MaxImportedReactions || r.Key == "" || len(r.Key) > mimi.MaxReactionKey {
			continue
		}
		ir := mimi.ImportedReaction{Key: r.Key, Count: r.Count}
		for _, u := range r.Users[:min(len(r.Users), mimi.MaxImportedReactors)] {
			ir.Users = append(ir.Users, truncateText(u, mimi.MaxImportedText))
		}
		im.Reactions = append(im.Reactions, ir)
	}
	var reply *mimi.MessageID
	if mid, ok := mids[m.ReplyTo]; ok && m.ReplyTo != "" {
		reply = &mid
	}
	build := func(h mimi.Header, i int) (*mimi.Content, error) {
		if i < 0 || i >= len(refs) {
			if strings.TrimSpace(text) == "" {
				text = "[empty message]"
			}
			return mimi.New(h, mimi.TextPart(text)), nil
		}
		var caption *mimi.Part
		if i == 0 && strings.TrimSpace(text) != "" {
			cp := mimi.TextPart(text)
			caption = &cp
		}
		return mimi.Attach(h, refs[i], thumbs[i], caption)
	}
	parts := []int{-1} // -1: a text message; else the file refs[i]
	if len(refs) > 0 {
		parts = parts[:0]
		for i := range refs {
			parts = append(parts, i)
		}
	}
	for _, i := range parts {
		c, err := build(e.header(room), i)
		if err != nil {
			return errorf(api.KindInvalid, "message %s: %v", m.ID, err)
		}
		c.InReplyTo = reply
		imi := im
		if i > 0 { // a further file: its own message with its own import ID
			iid := importers.ImportID(x.Format, x.Chat, fmt.Sprintf("%s#file%d", m.ID, i))
			imi.ID, imi.Reactions = iid[:], nil
		}
		mid, err := postContent(c, imi, bodies)
		if err != nil {
			return fmt.Errorf("message %s: %w", m.ID, err)
		}
		if i <= 0 {
			mids[m.ID] = mid
			resp.New++
		}
		if i >= 0 {
			resp.Media++
		}
	}
	for _, ed := range m.Edits {
		orig := mids[m.ID]
		c := mimi.Edit(e.header(room), orig, reply, nil, mimi.TextPart(ed.Text))
		iid := importers.ImportID(x.Format, x.Chat, ed.ID)
		ie := mimi.Imported{ID: iid[:], From: im.From, Author: im.Author, AuthorID: im.AuthorID, TS: ed.Time.UnixMilli()}
		if _, err := postContent(c, ie, bodies); err != nil {
			return fmt.Errorf("edit %s of message %s: %w", ed.ID, m.ID, err)
		}
		resp.Edits++
	}
	return nil
}

// importBodies are the messages of a batch: their encodings, and the
// contents they encode (handed to the timeline and the indexer, which
// then do not decode what the importer just encoded).
type importBodies struct {
	b [][]byte
	c []*mimi.Content
}

// postContent marks c as imported and adds it and its encoding to bodies.
func postContent(c *mimi.Content, im mimi.Imported, bodies *importBodies) (mimi.MessageID, error) {
	if err := c.SetImported(im); err != nil {
		return mimi.MessageID{}, errorf(api.KindInvalid, "%v", err)
	}
	b, mid, err := c.Marshal()
	if err != nil {
		return mid, errorf(api.KindInvalid, "encode message: %v", err)
	}
	if len(b) > maxContent {
		return mid, errorf(api.KindInvalid, "message of %d bytes encoded is too large (at most %d)", len(b), maxContent)
	}
	bodies.b, bodies.c = append(bodies.b, b), append(bodies.c, c)
	return mid, nil
}

// importChain is a batch of message bodies drafted as a chain of this
// device's events, each on the one before (seq, self and prev name the
// previous one): the first event's draft, and in an encrypted room the
// epoch key to seal all of them under and the randomness of the seals.
// The engine drafts it (startChain); sign seals and signs it, which may
// run on another goroutine once detach gave the chain its own key and
// randomness; authorBatch takes the events in.
type importChain struct {
	first  crdt.Draft
	key    *e2ee.EpochKey
	rand   io.Reader
	bodies [][]byte
	evs    []*crdt.Event // signed (sign)
	err    error
	copied bool // key is detach's copy
	// contents are what the bodies encode, as the importer built them.
	contents []*mimi.Content
	// decoded is each body as the timeline reads it (checkedContent) and
	// its text for the search index, made by sign from contents so that
	// neither the engine goroutine nor the indexer decodes what the
	// importer just encoded.
	decoded []handedContent
}

// handedContent is a message's readable content handed to the timeline
// (Engine.handed, contentDecoded) and its text to the indexer
// (indexMessage).
type handedContent struct {
	b    []byte
	c    *mimi.Content
	text string // mimi.Summary(c): what messageText would return
}

// checkHanded, when set (tests), makes sign decode each body as a
// received one would be and report when that differs from the content
// handed over. It is called from the signing goroutine.
var checkHanded func(error)

// startChain drafts the chain of bodies on the room's current events.
func (e *Engine) startChain(room crdt.RoomID, rc *roomCtl, bodies [][]byte) (*importChain, error) {
	if rc.room == nil {
		return nil, errorf(api.KindUnavailable, "room %s is not synced yet; try again when a peer has sent it", room)
	}
	c := &importChain{first: e.prepare(rc, rooms.TypeMessage, nil), bodies: bodies, rand: e.kr.rand}
	if rc.room.Encrypted() {
		k, rotated, err := e.sendKey(room, rc, c.first.Prev)
		if err != nil {
			return nil, err
		}
		if rotated {
			c.first = e.prepare(rc, rooms.TypeMessage, nil)
		}
		c.key = k
		id := k.ID()
		c.first.Epoch = id[:]
	}
	return c, nil
}

// detach gives c its own copy of the epoch key and the randomness its
// seals take, drawn now from r (the engine's), so that sign touches
// nothing the engine goroutine owns.
func (c *importChain) detach(room crdt.RoomID, r io.Reader) error {
	if c.key == nil {
		return nil
	}
	k, err := e2ee.EpochKeyFromSecret(room, c.key.Secret())
	if err != nil {
		return err
	}
	nonces := make([]byte, len(c.bodies)*chacha20poly1305.NonceSizeX) // what Seal reads
	if _, err := io.ReadFull(r, nonces); err != nil {
		return fmt.Errorf("read randomness: %w", err)
	}
	c.key, c.rand, c.copied = k, bytes.NewReader(nonces), true
	return nil
}

// sign seals (in an encrypted room) and signs the chain's events; a
// detached chain's key copy is destroyed after.
func (c *importChain) sign(ident *crdt.Identity) {
	c.evs, c.err = signChain(ident, c.first, c.key, c.rand, c.bodies)
	if c.copied {
		c.key.Destroy()
	}
	if c.err != nil || len(c.contents) != len(c.bodies) {
		return
	}
	// The contents name this user and the room (Engine.header), and each
	// body is their encoding (postContent): checkedContent would return
	// the body and, decoded again, the same content.
	c.decoded = make([]handedContent, len(c.evs))
	for i, mc := range c.contents {
		c.decoded[i] = handedContent{c.bodies[i], mc, mimi.Summary(mc)}
		if checkHanded != nil {
			b, dc := checkedContent(c.first.Room, c.evs[i], c.bodies[i])
			if !bytes.Equal(b, c.bodies[i]) || !reflect.DeepEqual(dc, mc) {
				checkHanded(fmt.Errorf("handed content of %s differs from its decoding:\n%#v\n%#v", c.evs[i].ID, mc, dc))
			}
		}
	}
}

// openSealed opens a sealed event's body, or returns its plaintext when
// this node has it already (it sealed the event: authorBatch, commit).
func (e *Engine) openSealed(k *e2ee.EpochKey, h e2ee.Header, ev *crdt.Event) ([]byte, error) {
	if pt, ok := e.kr.unwritten[ev.ID]; ok {
		return pt, nil
	}
	return k.Open(h, ev.Body)
}

func signChain(ident *crdt.Identity, first crdt.Draft, key *e2ee.EpochKey, rand io.Reader, bodies [][]byte) ([]*crdt.Event, error) {
	evs := make([]*crdt.Event, 0, len(bodies))
	for i, b := range bodies {
		d := first
		if i > 0 {
			prev := evs[i-1]
			d.Seq, d.Self, d.Prev, d.Depth, d.TS = prev.Seq+1, prev.ID, []crdt.EventID{prev.ID}, prev.Depth+1, max(first.TS, prev.TS)
		}
		d.Body = b
		if key != nil {
			h, err := e2ee.DraftHeader(ident.User, ident.Device.Public(), d)
			if err != nil {
				return nil, err
			}
			if d.Body, err = key.Seal(rand, h, b); err != nil {
				return nil, fmt.Errorf("seal: %w", err)
			}
		}
		ev, err := crdt.Sign(ident, d)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// continues reports whether the signed chain c was drafted as now would
// be (now: startChain on the room's current events): the same seq, self,
// parents, depth, auth references and epoch. The time may differ.
func (c *importChain) continues(now *importChain) bool {
	a, b := c.first, now.first
	return c.err == nil && len(c.evs) == len(c.bodies) && a.Room == b.Room && a.Type == b.Type &&
		a.Seq == b.Seq && a.Self == b.Self && slices.Equal(a.Prev, b.Prev) && a.Depth == b.Depth &&
		slices.Equal(a.Auth, b.Auth) && bytes.Equal(a.Epoch, b.Epoch) && a.SignBodyLen == b.SignBodyLen
}

// authorBatch takes in the chain c: its events as signed when it still
// continues the room's chain (nothing was authored or received since it
// was drafted that changes its draft), else its bodies authored again on
// the room's current events. They are taken in with one store commit;
// watchers hear of them once all are applied.
func (e *Engine) authorBatch(room crdt.RoomID, rc *roomCtl, c *importChain) error {
	if len(c.bodies) == 0 {
		return nil
	}
	if rc.room == nil {
		return errorf(api.KindUnavailable, "room %s is not synced yet; try again when a peer has sent it", room)
	}
	for _, b := range c.bodies {
		if err := rc.room.Check(e.ident.User, rooms.TypeMessage, nil, b); err != nil {
			return err
		}
	}
	now, err := e.startChain(room, rc, c.bodies)
	if err != nil {
		return err
	}
	evs, decoded := c.evs, c.decoded
	if !c.continues(now) {
		if evs, err = signChain(e.ident, now.first, now.key, e.kr.rand, c.bodies); err != nil {
			return err
		}
		decoded = nil
	}
	// The batch's watch items are held with its proposal and flushed by
	// its advance, after the commit (engine.go).
	e.held = &heldNotes{}
	err = e.add(room, rc, "", true, evs...)
	e.held = nil
	if err != nil {
		return err
	}
	clear(e.handed) // what the timeline did not read of the batch before
	for i, ev := range evs {
		if st, ok := rc.log.Status(ev.ID); !ok || st != crdt.StatusAccepted {
			return fmt.Errorf("own event %s was not accepted", ev.ID)
		}
		e.out.Publish = append(e.out.Publish, Published{room, ev})
		// What advance would decrypt and decode, it is handed (the
		// plaintext is dropped again if the commit fails: rejectLocal).
		if rc.room.Encrypted() {
			if e.kr.unwritten == nil {
				e.kr.unwritten = map[crdt.EventID][]byte{}
			}
			e.kr.unwritten[ev.ID] = c.bodies[i]
		}
		if decoded != nil {
			if e.handed == nil {
				e.handed = map[crdt.EventID]handedContent{}
			}
			e.handed[ev.ID] = decoded[i]
		}
	}
	return nil
}

// heldNotes are the watch notifications of one bulk import call.
type heldNotes struct {
	notes []heldNote
}

type heldNote struct {
	room crdt.RoomID
	rc   *roomCtl
	ev   *crdt.Event
}

func (h *heldNotes) add(room crdt.RoomID, rc *roomCtl, ev *crdt.Event) {
	h.notes = append(h.notes, heldNote{room, rc, ev})
}

// heldItemsMax is how many held notifications are streamed item by item;
// more become one resync item per room (api.WatchResync): a watcher could
// not take a whole import batch (watchBuffer), and a client that shows the
// room re-reads its latest page once rather than taking a page's worth
// of items many times over.
const heldItemsMax = 64

// flush streams the held notifications to the watchers.
func (h *heldNotes) flush(e *Engine) {
	if len(h.notes) <= heldItemsMax {
		for _, n := range h.notes {
			e.notify(n.room, n.rc, n.ev)
		}
		return
	}
	seen := map[crdt.RoomID]bool{}
	for _, n := range h.notes {
		if !seen[n.room] && e.watched(n.room) {
			e.emit(n.room, api.WatchItem{Kind: api.WatchResync, Room: n.room.String()})
		}
		seen[n.room] = true
	}
}

// truncateText cuts s to at most n bytes on a rune boundary.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// importedInfo is the JSON form of an imported message's extension.
func importedInfo(im *mimi.Imported) *api.ImportedInfo {
	if im == nil {
		return nil
	}
	out := &api.ImportedInfo{From: im.From, Author: im.Author, AuthorID: im.AuthorID, TS: im.TS, Edited: im.Edited}
	for _, r := range im.Reactions {
		if out.Reactions == nil {
			out.Reactions, out.ReactionCounts = map[string][]string{}, map[string]int{}
		}
		out.Reactions[r.Key] = append(out.Reactions[r.Key], r.Users...)
		out.ReactionCounts[r.Key] += r.Count
	}
	return out
}

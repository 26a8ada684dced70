package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/archive"
	"github.com/parley-p2p/parley/node/internal/clientfile"
)

// registerArchive binds export and import (history archives).
func (n *Node) registerArchive() {
	Handle(n.api, api.EpExport, n.export)
	Handle(n.api, api.EpImport, n.importArchive)
	Handle(n.api, api.EpImportChat, n.importChat)
	Handle(n.api, api.EpProgress, n.progress.get)
	Handle(n.api, api.EpExportReadable, n.exportReadable)
}

// importBatch is how many archived events one engine call takes in, so that
// a big import does not hold the engine for long at a time.
const importBatch = 1000

// Export writes every event of a room this node holds (accepted and
// rejected, bodies as held: purged ones stay purged) to req.Out as a history
// archive, atomically and with mode 0600.
//
// Media blobs are not archived by this method (Node.export adds them).
func (e *Engine) Export(ctx context.Context, req api.ExportReq) (api.ExportResp, error) {
	return e.export(ctx, req, nil, nil)
}

// export writes the archive; media, when not nil, returns the media
// blocks of the blobs the room's messages reference (by root CID), which
// go into the archive too, and how many blobs they make. prog counts the
// events read (nil: not counted).
func (e *Engine) export(ctx context.Context, req api.ExportReq, media func(roots []string) ([]archive.Block, int, error), prog *progress) (api.ExportResp, error) {
	out, err := absPath(req.Out, "output file")
	if err != nil {
		return api.ExportResp{}, err
	}
	if err := clientfile.CheckOutput(out); err != nil {
		return api.ExportResp{}, err
	}
	// The held set is taken on the engine goroutine, so that it is closed
	// under parents (events are committed in topological order); the bytes
	// are then read from the store without holding the engine.
	var room crdt.RoomID
	var items []crdt.Item
	var roots []string
	err = e.do(ctx, func() error {
		id, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		if rc.room == nil {
			return errorf(api.KindUnavailable, "room %s is not synced yet: this node holds no history of it to export", id)
		}
		room, items = id, rc.log.Items(0)
		if media != nil {
			roots = e.exportRoots(id, rc)
		}
		return nil
	})
	if err != nil {
		return api.ExportResp{}, err
	}
	want := make(map[crdt.EventID]bool, len(items))
	for _, it := range items {
		want[it.ID] = true
	}
	prog.setTotal(len(items))
	evs := make([]*crdt.Event, 0, len(items))
	err = e.store.Scan(room, 0, func(s crdt.Stored) bool {
		if want[s.Event.ID] {
			evs = append(evs, s.Event)
			prog.add(1)
		}
		return ctx.Err() == nil
	})
	switch {
	case err != nil:
		return api.ExportResp{}, fmt.Errorf("read room %s: %w", room, err)
	case ctx.Err() != nil:
		return api.ExportResp{}, ErrClosed
	case len(evs) != len(items):
		return api.ExportResp{}, fmt.Errorf("read room %s: the store holds %d of its %d events", room, len(evs), len(items))
	}
	var blocks []archive.Block
	blobs := 0
	if media != nil {
		if blocks, blobs, err = media(roots); err != nil {
			return api.ExportResp{}, err
		}
	}
	if err := writeAtomic(out, func(f *os.File) error { return archive.WriteMedia(f, room, evs, blocks) }); err != nil {
		return api.ExportResp{}, err
	}
	return api.ExportResp{Room: room.String(), Events: len(evs), Blobs: blobs}, nil
}

// Import reads, verifies and merges the archive at req.Path. Nothing is
// taken in unless the whole archive checks out: its CAR framing and CIDs,
// every event's signature and certificate (R1, by archive.Read) and that
// every event belongs to its room. The events then enter the room by the
// engine's one path (add), in ascending (depth, ID) order, exactly as if a
// peer had sent them: R2, authorization and strong removal apply as for
// synced events. A room this node did not keep is tracked from then on.
// Importing an archive again changes nothing (New is 0).
func (e *Engine) Import(ctx context.Context, req api.ImportReq) (api.ImportResp, error) {
	path, a, err := readArchive(req.Path)
	if err != nil {
		return api.ImportResp{}, err
	}
	return e.importArchive(ctx, path, a, nil)
}

// readArchive reads and verifies the archive at the path a client sent.
func readArchive(p string) (string, *archive.Archive, error) {
	path, err := absPath(p, "archive file")
	if err != nil {
		return "", nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", nil, errorf(api.KindNotFound, "no archive file %s", path)
	}
	a, err := readArchiveFile(path)
	return path, a, err
}

// readArchiveFile reads and verifies the archive file at path.
func readArchiveFile(path string) (*archive.Archive, error) {
	f, err := clientfile.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	a, err := archive.Read(f, archive.DefaultLimits)
	f.Close()
	switch {
	case errors.Is(err, archive.ErrInvalid):
		return nil, errorf(api.KindInvalid, "%s: %v (nothing was imported)", path, err)
	case err != nil:
		return nil, errorf(api.KindInvalid, "cannot read %s: %v (nothing was imported)", path, clientfile.UnwrapPathErr(err))
	}
	for _, ev := range a.Events { // archive.Read checks it; the engine relies on it
		if ev.Room != a.Room {
			return nil, errorf(api.KindInvalid, "%s: event %s belongs to another room (nothing was imported)", path, ev.ID)
		}
	}
	return a, nil
}

// importArchive merges the verified archive a (read from path), counting
// the events taken in in prog (nil: not counted).
//
// Its batches are committed durably, or, on a store that can sync what it
// committed at once (badgerstore), without Durable and then made durable
// by one Sync before it returns: the import is acknowledged when it
// returns, and one sync instead of one per batch (docs/design.md §2).
func (e *Engine) importArchive(ctx context.Context, path string, a *archive.Archive, prog *progress) (api.ImportResp, error) {
	resp := api.ImportResp{Room: a.Room.String(), Events: len(a.Events)}
	prog.setTotal(len(a.Events))
	sy, once := e.store.(syncer)
	for start := 0; start < len(a.Events); start += importBatch {
		batch := a.Events[start:min(start+importBatch, len(a.Events))]
		err := e.do(ctx, func() error {
			rc := e.rooms[a.Room]
			fresh := rc == nil
			if fresh {
				rc = e.newRoom(a.Room)
			}
			for _, ev := range batch {
				if !rc.log.Has(ev.ID) {
					resp.New++
				}
			}
			if err := e.add(a.Room, rc, "", !once, batch...); err != nil {
				if fresh && rc.log.Len() == 0 {
					delete(e.rooms, a.Room)
				}
				return err
			}
			if fresh {
				e.track(a.Room) // start gossiping and syncing it, like a joined room
			}
			return nil
		})
		if err != nil {
			return api.ImportResp{}, fmt.Errorf("import into room %s after %d of %d events: %w", a.Room, start, len(a.Events), err)
		}
		prog.add(len(batch))
	}
	if once {
		if err := sy.Sync(); err != nil {
			return api.ImportResp{}, fmt.Errorf("import into room %s: %w", a.Room, err)
		}
	}
	return resp, nil
}

// syncer is a store that makes every batch committed so far durable in
// one call (badgerstore.Store.Sync).
type syncer interface{ Sync() error }

// absPath checks that a path sent by a client is absolute (the CLI makes it
// so; the daemon's working folder means nothing to the user).
func absPath(p, what string) (string, error) {
	switch {
	case p == "":
		return "", errorf(api.KindInvalid, "name the %s", what)
	case !filepath.IsAbs(p):
		return "", errorf(api.KindInvalid, "the %s %q must be an absolute path", what, p)
	}
	return filepath.Clean(p), nil
}

// writeAtomic writes path through a temporary file in the same folder,
// mode 0600, synced, then renamed into place: a reader sees the old file or
// the whole new one, never a part.
func writeAtomic(path string, write func(*os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return errorf(api.KindInvalid, "cannot write into %s: %v", filepath.Dir(path), clientfile.UnwrapPathErr(err))
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := write(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := clientfile.CheckOutput(path); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return errorf(api.KindInvalid, "cannot write %s: %v", path, clientfile.UnwrapPathErr(err))
	}
	done = true
	if d, err := os.Open(filepath.Dir(path)); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return nil
}

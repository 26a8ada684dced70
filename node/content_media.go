package node

import (
	"context"
	"strings"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/mediasvc"
	"github.com/parley-p2p/parley/rooms/mimi"
)

// SendFile authors a media message.
func (e *Engine) SendFile(ctx context.Context, room string, file mimi.MediaRef, thumb *mimi.MediaRef, caption string) (api.EventResp, error) {
	var cp *mimi.Part
	if caption != "" {
		if err := checkText(caption); err != nil {
			return api.EventResp{}, err
		}
		p := mimi.TextPart(caption)
		cp = &p
	}
	var resp api.EventResp
	err := e.do(ctx, func() error {
		id, rc, err := e.roomOf(room)
		if err != nil {
			return err
		}
		c, err := mimi.Attach(e.header(id), file, thumb, cp)
		if err != nil {
			return errorf(api.KindInvalid, "attach: %v", err)
		}
		ev, err := e.authorContent(id, rc, c)
		if err != nil {
			return err
		}
		resp.Event = ev.ID.String()
		return nil
	})
	return resp, err
}

// sendFile is the API method send-file: import, then author.
func (n *Node) sendFile(ctx context.Context, req api.SendFileReq) (api.SendFileResp, error) {
	if n.media == nil {
		return api.SendFileResp{}, errorf(api.KindUnavailable, "the media store is not open")
	}
	if _, err := crdt.ParseID(req.Room); err != nil {
		return api.SendFileResp{}, errorf(api.KindInvalid, "%q is not a room ID", req.Room)
	}
	if _, _, err := n.engine.roomOfChecked(ctx, req.Room); err != nil {
		return api.SendFileResp{}, err
	}
	if len(req.Waveform) > media.WaveformBuckets {
		return api.SendFileResp{}, errorf(api.KindInvalid, "a waveform has at most %d buckets, not %d", media.WaveformBuckets, len(req.Waveform))
	}
	file, thumb, err := n.media.Attach(req.Path, req.Voice)
	if err != nil {
		return api.SendFileResp{}, err
	}
	// What the client measured fills in what the node could not read.
	if strings.HasPrefix(file.MIME, "audio/") || file.Info.Voice {
		if len(file.Info.Waveform) == 0 && len(req.Waveform) > 0 {
			file.Info.Waveform = req.Waveform
		}
		if file.Info.DurationMs == 0 {
			file.Info.DurationMs = req.DurationMS
		}
	}
	r, err := n.engine.SendFile(ctx, req.Room, file, thumb, req.Caption)
	if err != nil {
		return api.SendFileResp{}, err
	}
	return api.SendFileResp{Event: r.Event, CID: file.CID}, nil
}

// messageMedia is the JSON form of a message's first media part.
func messageMedia(ms []mimi.Media) *api.MessageMedia {
	if len(ms) == 0 {
		return nil
	}
	r := ms[0].Ref
	mm := &api.MessageMedia{CID: r.CID, MIME: r.MIME, Size: r.Size, Name: r.Name, Width: r.Info.Width, Height: r.Info.Height,
		DurationMS: r.Info.DurationMs, Waveform: r.Info.Waveform, Voice: r.Info.Voice}
	if k, err := media.FileKeyFromBytes(r.Key); err == nil {
		mm.Key = mediasvc.KeyString(k)
	}
	if t := ms[0].Thumbnail; t != nil {
		mm.ThumbnailCID = t.CID
		if k, err := media.FileKeyFromBytes(t.Key); err == nil {
			mm.ThumbnailKey = mediasvc.KeyString(k)
		}
	}
	return mm
}

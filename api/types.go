package api

// Wire types of the local HTTP API (docs/api.md). Every method is `POST
// /v1/<method>` with a JSON request body and a JSON response; errors are
// {"error": "...", "kind": "...", "code": "..."} with a status code from the
// kind (see errors.go). JSON keys follow the CLI contract (docs/cli.md),
// which prints these objects as is. The Ep tables hold only these types.

// API endpoints: the table the server binds and the client calls (endpoint.go).
var (
	EpID         = endpoint[Empty, IDResp]("id", "This node's user, device, peer ID and listen addresses.")
	EpPeers      = endpoint[Empty, PeersResp]("peers", "The connected peers.")
	EpConnect    = endpoint[AddrReq, PeerResp]("connect", "Dial a peer by full multiaddr and remember it.")
	EpDisconnect = endpoint[PeerReq, PeerResp]("disconnect", "Close connections to a peer and forget it.")
	EpStatus     = endpoint[Empty, StatusResp]("status", "Peer and room counts, rooms still syncing, store size.")
	EpRoomCreate = endpoint[RoomCreateReq, RoomResp]("room/create", "Create a room.")
	EpRoomList   = endpoint[Empty, RoomListResp]("room/list", "The rooms this node keeps.")
	EpRoomInfo   = endpoint[RoomReq, RoomInfoResp]("room/info", "A room's name, members, encryption and sync state.")
	EpRoomJoin   = endpoint[RoomJoinReq, RoomEventResp]("room/join", "Join a public room or accept an invite, optionally through peers.")
	EpRoomHost   = endpoint[RoomJoinReq, RoomResp]("room/host", "Keep and serve a room's log without joining it.")
	EpRoomUnhost = endpoint[RoomReq, RoomResp]("room/unhost", "Stop hosting a room.")
	EpSend       = endpoint[SendReq, EventResp]("send", "Send a message.")
	EpHistory    = endpoint[HistoryReq, HistoryResp]("history", "The visible timeline of a room.")
	EpWatch      = streamEndpoint[WatchReq, WatchItem]("watch", "New events, warnings, receipts, typing and presence, one JSON object per line.")
)

// Empty is the request of methods without arguments and the answer of methods without results.
type Empty struct{}

// IDResp answers EpID.
type IDResp struct {
	User   string   `json:"user"`
	Device string   `json:"device"`
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
}

// PeerInfo is one connected peer.
type PeerInfo struct {
	PeerID string `json:"peer_id"`
	Addr   string `json:"addr"`
	// Conns is the remote address of every open connection to the peer
	// (a relayed one holds /p2p-circuit): more than one circuit to a peer
	// is a circuit opened for nothing.
	Conns []string `json:"conns,omitempty"`
	// Score is the peer's gossipsub v1.1 score (docs/protocol.md §2);
	// absent when pubsub has not scored the peer.
	Score *float64 `json:"score,omitempty"`
}

// PeersResp answers EpPeers.
type PeersResp struct {
	Peers []PeerInfo `json:"peers"`
}

// AddrReq asks to connect to a multiaddr.
type AddrReq struct {
	Addr string `json:"addr"`
}

// PeerReq names a peer.
type PeerReq struct {
	PeerID string `json:"peer_id"`
}

// PeerResp answers connect and disconnect.
type PeerResp struct {
	PeerID string `json:"peer_id"`
}

// StatusResp answers EpStatus.
type StatusResp struct {
	Peers      int      `json:"peers"`
	Rooms      int      `json:"rooms"`
	Syncing    []string `json:"syncing"`
	StoreBytes int64    `json:"store_bytes"`
	// How the node is reached (node/reach.go): public, private or unknown
	// (AutoNAT's verdict, or the --reachability override), the addresses
	// it announces (relay addresses included), the relays it holds a
	// reservation on, and its own relay service (off, rooms or open).
	Reachability string   `json:"reachability,omitempty"`
	Addrs        []string `json:"addrs,omitempty"`
	Relays       []string `json:"relays,omitempty"`
	RelayService string   `json:"relay_service,omitempty"`
	// Reachable is the addresses AutoNAT v2 confirmed reachable from
	// outside (each by two servers or more).
	Reachable []string `json:"reachable_addrs,omitempty"`
}

// RoomCreateReq asks for a new room.
type RoomCreateReq struct {
	Name    string `json:"name,omitempty"`
	Topic   string `json:"topic,omitempty"`
	Public  bool   `json:"public,omitempty"`
	History string `json:"history,omitempty"` // shared (default) or joined
	// Encrypted: end-to-end encryption; nil means the default (private
	// rooms encrypted, public rooms plaintext).
	Encrypted *bool `json:"encrypted,omitempty"`
}

// RoomResp names a room.
type RoomResp struct {
	Room string `json:"room"`
}

// RoomSummary is one entry of EpRoomList.
type RoomSummary struct {
	Room       string `json:"room"`
	Name       string `json:"name"`
	Membership string `json:"membership"`
	// DM is the other user of a direct-message room (api.EpDM), else "".
	DM string `json:"dm,omitempty"`
	// AvatarMedia is the room's avatar when it is in the media store.
	AvatarMedia *AvatarMedia `json:"avatar_media,omitempty"`
}

// RoomListResp answers EpRoomList.
type RoomListResp struct {
	Rooms []RoomSummary `json:"rooms"`
}

// RoomReq names a room.
type RoomReq struct {
	Room string `json:"room"`
}

// MemberInfo is one member in EpRoomInfo.
type MemberInfo struct {
	User        string `json:"user"`
	Membership  string `json:"membership"`
	Role        string `json:"role"`
	Power       int64  `json:"power"`
	DisplayName string `json:"display_name"`
	Verified    bool   `json:"verified"` // this user confirmed the member's safety number (parley verify --confirm)
}

// SyncInfo says how complete this node's copy of a room is.
type SyncInfo struct {
	Events  int      `json:"events"`
	Heads   []string `json:"heads"`
	Missing int      `json:"missing"` // ancestors known to exist but not held; 0 = no gap below the heads
	Pending int      `json:"pending"` // events held back until their ancestors arrive
	Expired int      `json:"expired"` // events that waited for their ancestors longer than 10 minutes and were dropped
	// SyncPeers counts the connected peers that serve sync for the room
	// (subscribed to its topics, or served it before). With 0 and a gap,
	// nothing can repair the gap until such a peer is reachable.
	SyncPeers int `json:"sync_peers"`
}

// RoomInfoResp answers EpRoomInfo.
type RoomInfoResp struct {
	Room   string `json:"room"`
	Name   string `json:"name"`
	Topic  string `json:"topic"`
	Avatar string `json:"avatar"` // as ProfileResp.Avatar
	// AvatarMedia: the room's avatar when it is in the media store.
	AvatarMedia *AvatarMedia `json:"avatar_media,omitempty"`
	JoinRule    string       `json:"join_rule"`
	History     string       `json:"history"`
	// Encrypted: end-to-end encrypted; Devices: the member device set
	// (each device's ID) that the room's epochs are wrapped to.
	Encrypted bool         `json:"encrypted"`
	Devices   []string     `json:"devices,omitempty"`
	Members   []MemberInfo `json:"members"`
	Sync      SyncInfo     `json:"sync"`
	// Warnings are loud security notices about the room's members (a
	// changed master key: see Warning); empty when there is none.
	Warnings []Warning `json:"warnings"`
}

// RoomJoinReq asks to join a room, optionally through a peer.
type RoomJoinReq struct {
	Room string   `json:"room"`
	Via  []string `json:"via,omitempty"`
}

// RoomEventResp answers room/join.
type RoomEventResp struct {
	Room  string `json:"room"`
	Event string `json:"event"`
}

// SendReq sends a message.
type SendReq struct {
	Room     string `json:"room"`
	Text     string `json:"text"`
	Markdown bool   `json:"markdown,omitempty"` // render Text as Markdown (sanitized HTML plus a plain body)
	ReplyTo  string `json:"reply_to,omitempty"` // the event answered
	Thread   string `json:"thread,omitempty"`   // the root event of the thread posted into
	// Mentions are user IDs the message mentions besides any "@USERID" in
	// Text (node/content.go).
	Mentions []string `json:"mentions,omitempty"`
}

// EventResp names the event a command wrote.
type EventResp struct {
	Event string `json:"event"`
}

// HistoryReq asks for the visible timeline.
type HistoryReq struct {
	Room   string `json:"room"`
	Limit  int    `json:"limit,omitempty"`
	Before string `json:"before,omitempty"`
	// After lists the oldest Limit entries after this event instead;
	// Around, Limit entries around this event: it (when listed) and the
	// newer half, then the older half (more of one side where the other
	// runs out). Before, After and Around exclude each other and Thread.
	After  string `json:"after,omitempty"`
	Around string `json:"around,omitempty"`
	Thread string `json:"thread,omitempty"` // only the thread whose root is this event
	// Versions lists the original of this message and its edits instead
	// (node/content.go); it excludes Thread, Limit and Before.
	Versions string `json:"versions,omitempty"`
	// Quiet leaves out the key-management events (device, rotate,
	// keyfwd), as people's history does unless they ask for all.
	Quiet bool `json:"quiet,omitempty"`
}

// TimelineEvent is one entry of the visible timeline.
type TimelineEvent struct {
	ID        string `json:"id"`
	Sender    string `json:"sender"`
	Type      string `json:"type"`
	TS        int64  `json:"ts"`
	Depth     uint64 `json:"depth"`
	Body      string `json:"body,omitempty"`
	Decrypted bool   `json:"decrypted"`
	Redacted  bool   `json:"redacted"`
	Redacts   string `json:"redacts,omitempty"` // a redact event: the event it deletes
	// State events: the membership or value they set.
	StateKey   *string `json:"state_key,omitempty"`
	Membership string  `json:"membership,omitempty"`
	// Messages (node/content.go): the projected message, edits applied.
	Format    string              `json:"format,omitempty"`    // "html" where the message is rich text
	Formatted string              `json:"formatted,omitempty"` // its sanitized HTML
	HTML      string              `json:"html,omitempty"`      // the same sanitized HTML
	ReplyTo   string              `json:"reply_to,omitempty"`  // the event answered
	Thread    string              `json:"thread,omitempty"`    // the root event of its thread
	Edited    bool                `json:"edited,omitempty"`    // Body is the latest edit
	Versions  int                 `json:"versions,omitempty"`  // the original and its edits
	Reactions map[string][]string `json:"reactions,omitempty"` // key -> users, each user once
	Receipts  []string            `json:"receipts,omitempty"`  // users whose read marker stands here
	ReadBy    []string            `json:"read_by,omitempty"`   // the same users
	Media     *MessageMedia       `json:"media,omitempty"`     // a media message's file (node/content_media.go)
	Mentions  []string            `json:"mentions,omitempty"`  // users the message mentions
	Replaces  string              `json:"replaces,omitempty"`  // history --versions: the original an edit replaces
	Imported  *ImportedInfo       `json:"imported,omitempty"`  // a message imported from another messenger (import.go)
	Call      *CallEvent          `json:"call,omitempty"`      // a call event (types_calls.go)
}

// HistoryResp answers EpHistory.
type HistoryResp struct {
	Events []TimelineEvent `json:"events"`
	// Refs maps the IDs of the listed events (and of those they answer,
	// thread under, redact or replace) to their short references
	// (node/resolve.go), which every command accepts in place of an ID.
	Refs map[string]string `json:"refs,omitempty"`
	// Names maps the users the events name to their display names.
	Names map[string]string `json:"names,omitempty"`
}

// WatchReq selects what to stream (all rooms when Room is empty).
type WatchReq struct {
	Room string `json:"room,omitempty"`
}

// WatchReady is the kind of the first line of every watch stream, sent
// once the watcher is registered: whatever is accepted after it is streamed.
const WatchReady = "ready"

// WatchResync is the kind of a line that stands for items the stream left
// out: the client fell behind (its buffer filled), or a bulk operation (an
// import) changed the room too much to stream item by item. Room names the
// room ("" for any). A client that shows state re-reads it after this line
// (as after ready); the items it left out were all accepted before it.
const WatchResync = "resync"

// WatchItem is one line of the watch stream.
type WatchItem struct {
	Kind    string         `json:"kind"` // "ready" (first line), "event", "warning", "receipt", "typing", "presence" or "call"
	Room    string         `json:"room"`
	Event   *TimelineEvent `json:"event,omitempty"`
	Warning *Warning       `json:"warning,omitempty"` // kind "warning"
	// MentionsMe marks a new message or edit that mentions this node's
	// user (node/content.go).
	MentionsMe bool `json:"mentions_me,omitempty"`
	// Ref is the event's short reference and Name its sender's display
	// name, for people (node/resolve.go).
	Ref  string `json:"ref,omitempty"`
	Name string `json:"name,omitempty"`
	// Kinds receipt, typing and presence (types_content.go).
	*Signal
	// Kind "call": a signalling message to this device (types_calls.go).
	CallSignal *CallSignal `json:"call_signal,omitempty"`
}

package api

// Endpoints of message content, receipts, typing and presence.
var (
	EpEdit        = endpoint[EditReq, EventResp]("edit", "Edit a message.")
	EpReact       = endpoint[ReactReq, EventResp]("react", "React to an event.")
	EpUnreact     = endpoint[ReactReq, EventResp]("unreact", "Take a reaction back.")
	EpRead        = endpoint[ReadReq, Empty]("read", "Move this user's read marker.")
	EpTyping      = endpoint[TypingReq, Empty]("typing", "Say this user started or stopped typing.")
	EpPresence    = endpoint[PresenceReq, PresenceResp]("presence", "Set this user's presence.")
	EpPresenceGet = endpoint[UserReq, PresenceResp]("presence/get", "A user's presence.")
	EpSettings    = endpoint[SettingsReq, SettingsResp]("settings", "Read or change the typing and presence settings.")
	EpSendFile    = endpoint[SendFileReq, SendFileResp]("send-file", "Send a file as a media message.")
)

// SendFileReq sends a file as a media message. The daemon reads the file
// itself: Path must be absolute.
type SendFileReq struct {
	Room    string `json:"room"`
	Path    string `json:"path"`
	Voice   bool   `json:"voice,omitempty"`   // a recorded voice message (WAV or Ogg)
	Caption string `json:"caption,omitempty"` // text shown with the file
	// Waveform and DurationMS describe a voice message the client measured
	// itself (a browser recording in WebM or Ogg, which the node cannot
	// decode): used only where the node reads none from the file. Waveform
	// holds at most 64 loudness buckets, 0-255 (base64 in JSON).
	Waveform   []byte `json:"waveform,omitempty"`
	DurationMS uint32 `json:"duration_ms,omitempty"`
}

// SendFileResp answers EpSendFile.
type SendFileResp struct {
	Event string `json:"event"`
	CID   string `json:"cid"`
}

// MessageMedia is the file of a media message in history. Key (and
// ThumbnailKey) is the file key from inside the message, for
// `parley media get CID#KEY`.
type MessageMedia struct {
	CID          string `json:"cid"`
	Key          string `json:"key,omitempty"`
	MIME         string `json:"mime"`
	Size         uint64 `json:"size"`
	Name         string `json:"name,omitempty"`
	Width        uint32 `json:"width,omitempty"`
	Height       uint32 `json:"height,omitempty"`
	DurationMS   uint32 `json:"duration_ms,omitempty"`
	Waveform     []byte `json:"waveform,omitempty"` // loudness per bucket, 0-255 (base64 in JSON)
	Voice        bool   `json:"voice,omitempty"`
	ThumbnailCID string `json:"thumbnail_cid,omitempty"`
	ThumbnailKey string `json:"thumbnail_key,omitempty"`
}

// EditReq replaces the text of one of this user's messages.
type EditReq struct {
	Room     string `json:"room"`
	Event    string `json:"event"`
	Text     string `json:"text"`
	Markdown bool   `json:"markdown,omitempty"`
	// Mentions are user IDs the new version mentions besides any
	// "@USERID" in Text; they replace the earlier version's.
	Mentions []string `json:"mentions,omitempty"`
}

// ReactReq adds or withdraws a reaction.
type ReactReq struct {
	Room  string `json:"room"`
	Event string `json:"event"`
	Key   string `json:"key"`
}

// ReadReq sends a read receipt up to Event.
type ReadReq struct {
	Room  string `json:"room"`
	Event string `json:"event"`
}

// TypingReq starts (On) or stops a typing notification.
type TypingReq struct {
	Room string `json:"room"`
	On   bool   `json:"on"`
}

// PresenceReq sets this user's presence: online, away or offline.
type PresenceReq struct {
	Presence string `json:"presence"`
}

// PresenceResp is a user's presence as this node knows it.
type PresenceResp struct {
	User         string `json:"user"`
	Presence     string `json:"presence"`
	LastActiveMS int64  `json:"last_active_ms"`
}

// SettingsReq changes what this node sends and shows; nil leaves a
// setting as it is.
type SettingsReq struct {
	Typing   *bool `json:"typing,omitempty"`
	Presence *bool `json:"presence,omitempty"`
}

// SettingsResp is the current settings.
type SettingsResp struct {
	Typing   bool `json:"typing"`
	Presence bool `json:"presence"`
}

// Signal is what a watch line of kind receipt, typing or presence carries.
type Signal struct {
	User         string `json:"user,omitempty"`
	Device       string `json:"device,omitempty"`
	Read         string `json:"read,omitempty"`     // receipt: the event read up to
	Typing       *bool  `json:"typing,omitempty"`   // typing: started or stopped
	Presence     string `json:"presence,omitempty"` // presence: online, away, offline
	LastActiveMS int64  `json:"last_active_ms,omitempty"`
	ExpiresMS    int64  `json:"expires_ms,omitempty"` // typing: when it lapses without a renewal
}

package api

// API methods and wire types for voice and video calls (docs/protocol.md
// 5.3, docs/cli.md "Calls"). A call participant is a device; signalling
// travels as sealed ephemeral signals addressed to one device, and call
// start, join, leave and end are timeline events of type "call".

// Endpoints of calls.
var (
	EpCallStart   = endpoint[CallStartReq, CallResp]("call.start", "Start a call in a room (or join the one running) and ring its members.")
	EpCallJoin    = endpoint[CallReq, Empty]("call.join", "Join a running call.")
	EpCallLeave   = endpoint[CallReq, Empty]("call.leave", "Leave a call; the last participant also ends it.")
	EpCallDecline = endpoint[CallReq, Empty]("call.decline", "Decline a call: tell the caller's device, author nothing.")
	EpCallSignal  = endpoint[CallSignalReq, Empty]("call.signal", "Send one signalling message (offer, answer, candidate, hangup) to one device.")
	EpCalls       = endpoint[RoomReq, CallsResp]("calls", "List the running calls of a room.")
	EpCallDial    = endpoint[CallDialReq, CallResp]("call.dial", "Have the daemon's own WebRTC peer start or join the room's call.")
	EpCallHangup  = endpoint[RoomReq, Empty]("call.hangup", "Have the daemon's own WebRTC peer leave the room's call.")
)

// Signalling operations (CallSignalReq.Op, CallSignal.Op).
const (
	CallOpOffer     = "offer"
	CallOpAnswer    = "answer"
	CallOpCandidate = "candidate"
	CallOpHangup    = "hangup"
	CallOpDecline   = "decline" // sent by call.decline only
	CallOpState     = "state"   // the sender's microphone and camera: Muted, VideoOff
)

// Call timeline actions (CallEvent.Action).
const (
	CallStart = "start"
	CallJoin  = "join"
	CallLeave = "leave"
	CallEnd   = "end"
)

// CallStartReq starts a call in Room.
type CallStartReq struct {
	Room  string `json:"room"`
	Video bool   `json:"video,omitempty"`
}

// CallResp names a call: 32 hex characters.
type CallResp struct {
	Call string `json:"call"`
}

// CallReq names a call of a room.
type CallReq struct {
	Room string `json:"room"`
	Call string `json:"call"`
}

// CallSignalReq sends one signalling message to one device of a call.
// Candidate is a JSON RTCIceCandidateInit (its "candidate" string empty to
// end gathering); SDP is the session description of an offer or answer.
type CallSignalReq struct {
	Room      string `json:"room"`
	Call      string `json:"call"`
	ToUser    string `json:"to_user"`
	ToDevice  string `json:"to_device"`
	Op        string `json:"op"`
	SDP       string `json:"sdp,omitempty"`
	Candidate string `json:"candidate,omitempty"`
	Muted     bool   `json:"muted,omitempty"`     // op state
	VideoOff  bool   `json:"video_off,omitempty"` // op state: the camera is off
}

// CallSignal is a signalling message addressed to this device (watch items
// of kind "call").
type CallSignal struct {
	Call       string `json:"call"`
	FromUser   string `json:"from_user"`
	FromDevice string `json:"from_device"`
	Op         string `json:"op"`
	SDP        string `json:"sdp,omitempty"`
	Candidate  string `json:"candidate,omitempty"`
	Muted      bool   `json:"muted,omitempty"`     // op state
	VideoOff   bool   `json:"video_off,omitempty"` // op state
}

// CallEvent is what a timeline event of type "call" says.
type CallEvent struct {
	Call       string `json:"call"`
	Action     string `json:"action"` // start, join, leave or end
	Video      bool   `json:"video,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"` // end
	Missed     bool   `json:"missed,omitempty"`      // end: no one joined but the starter
	Device     string `json:"device"`                // the device that authored it
}

// CallParticipant is one device in a call.
type CallParticipant struct {
	User   string `json:"user"`
	Device string `json:"device"`
	Name   string `json:"name,omitempty"`
}

// CallInfo is one running call.
type CallInfo struct {
	Call         string            `json:"call"`
	Room         string            `json:"room"`
	Video        bool              `json:"video"`
	StartedBy    string            `json:"started_by"`
	StartedTS    int64             `json:"started_ts"` // ms
	Participants []CallParticipant `json:"participants"`
}

// CallsResp answers EpCalls, oldest call first.
type CallsResp struct {
	Calls []CallInfo `json:"calls"`
}

// CallDialReq has the daemon's own WebRTC peer start or join the room's
// call. Send is an absolute path to an audio file to stream into it (Ogg
// Opus, or WAV: 16-bit PCM, which the daemon encodes as G.711 µ-law);
// Record an absolute directory where what each other participant sends is
// written (Ogg for Opus, WAV for G.711), one file per participant.
type CallDialReq struct {
	Room   string `json:"room"`
	Video  bool   `json:"video,omitempty"`
	Send   string `json:"send,omitempty"`
	Record string `json:"record,omitempty"`
	// SendVideo is an absolute path to a VP8 video (an IVF file) sent in a
	// loop in a video call; without it, the daemon sends a test pattern.
	SendVideo string `json:"send_video,omitempty"`
}

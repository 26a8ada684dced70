package api

// The ICE servers of a call (docs/protocol.md 9.3): STUN and TURN relays
// that members of a room run for each other.
var EpCallICEServers = endpoint[CallICEServersReq, CallICEServersResp]("call.ice_servers",
	"STUN and TURN servers for a call in a room: this node's STUN, and the TURN relays of connected members that run one, with fresh credentials.")

// CallICEServersReq names the room of the call.
type CallICEServersReq struct {
	Room string `json:"room"`
}

// ICEServer is one entry of an RTCConfiguration's iceServers: TURN
// entries carry short-lived credentials, STUN entries none.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// CallICEServersResp answers EpCallICEServers; ICEServers is never null.
// STUN entries come first, then TURN relays; a client tries direct paths
// first and falls back to a relay.
type CallICEServersResp struct {
	ICEServers []ICEServer `json:"ice_servers"`
}

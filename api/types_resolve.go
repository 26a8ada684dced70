package api

// API methods that turn what a person types into identifiers (node/resolve.go):
// room names, display names and short event references.
var (
	EpResolve   = endpoint[ResolveReq, ResolveResp]("resolve", "Turn room names, display names and short event references into IDs.")
	EpMediaSave = endpoint[MediaSaveReq, MediaSaveResp]("media/save", "Fetch, verify, decrypt and write the file of a media message.")
)

// RefLen is the shortest event reference.
const RefLen = 8

// ResolveReq names a room, events of that room and users as a person may
// type them. Room is a room ID or the name of one of this node's rooms;
// each of Events an event ID or a reference (RefLen or more characters of
// an ID after its constant "bafyrei" start, or a prefix of the ID itself)
// to an event of Room; each of Users a user ID or the display name of a
// member of one of this node's rooms. Empty fields are left out.
type ResolveReq struct {
	Room   string   `json:"room,omitempty"`
	Events []string `json:"events,omitempty"`
	Users  []string `json:"users,omitempty"`
}

// ResolveResp answers EpResolve with the IDs, in the order asked. A
// name or reference that matches nothing is a not_found error; one that
// matches more than one is an invalid error that lists the matches.
type ResolveResp struct {
	Room   string   `json:"room,omitempty"`
	Events []string `json:"events,omitempty"`
	Users  []string `json:"users,omitempty"`
}

// MediaSaveReq asks for the file of a media message: fetched if needed,
// verified, decrypted with the key from inside the message and written to
// Out (an absolute path), or, without Out, into the folder Dir under the
// file's own name, which must not exist yet.
type MediaSaveReq struct {
	Room  string `json:"room"`
	Event string `json:"event"`
	Out   string `json:"out,omitempty"`
	Dir   string `json:"dir,omitempty"`
}

// MediaSaveResp answers EpMediaSave.
type MediaSaveResp struct {
	CID  string `json:"cid"`
	Size int64  `json:"size"`
	Path string `json:"path"` // where the file was written
}

package api

// EpSearch finds messages by their text (node/search.go).
var EpSearch = endpoint[SearchReq, SearchResp]("search", "Find messages by their text, in one room or every joined room, newest first.")

// SearchReq asks for the messages whose current text holds every word of
// Query (case-insensitive substrings), in Room or, when Room is empty, in
// every room this user joined. Only what this node can read is searched:
// in an encrypted room, what it decrypted. Redacted and deleted messages
// and those of blocked users are never found.
type SearchReq struct {
	Room  string `json:"room,omitempty"`
	Query string `json:"query"`
	Limit int    `json:"limit,omitempty"` // at most this many hits (default 20, at most 200)
}

// SearchHit is one message found.
type SearchHit struct {
	Room     string        `json:"room"`
	RoomName string        `json:"room_name,omitempty"`
	Ref      string        `json:"ref,omitempty"` // the event's short reference in its room
	Event    TimelineEvent `json:"event"`
}

// SearchResp answers EpSearch: the hits, newest first.
type SearchResp struct {
	Hits []SearchHit `json:"hits"`
	// More says that more messages match than Limit allowed.
	More bool `json:"more,omitempty"`
	// Names maps the senders of the hits to their display names.
	Names map[string]string `json:"names,omitempty"`
}

package api

// EpRoomLimits reads or sets a room's limits (docs/limits.md, "Room limits").
var EpRoomLimits = endpoint[RoomLimitsReq, RoomLimitsResp]("room/limits", "Read or set a room's rate limits and join proof of work.")

// RoomLimitsReq sets a room's limits; nil fields stay as they are, and a
// request with none only reads them. Zero lifts a limit.
type RoomLimitsReq struct {
	Room     string `json:"room"`
	Messages *int64 `json:"messages,omitempty"`  // events per device per minute
	Bytes    *int64 `json:"bytes,omitempty"`     // bytes per device per minute
	JoinWork *int64 `json:"join_work,omitempty"` // join proof of work, leading zero bits
}

// RoomLimitsResp is a room's limits after the request (0: none), and the
// room.limits event authored, if any.
type RoomLimitsResp struct {
	Room     string `json:"room"`
	Messages int64  `json:"messages"`
	Bytes    int64  `json:"bytes"`
	JoinWork int64  `json:"join_work"`
	Event    string `json:"event,omitempty"`
}

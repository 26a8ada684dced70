package api

// API methods and wire types for room governance, profiles, direct
// messages, blocking and invite controls (docs/cli.md "Rooms and membership").

// Endpoints of membership, roles, profiles, DMs, blocking and redaction.
var (
	EpRoomInvite    = endpoint[RoomUserReq, EventResp]("room/invite", "Invite a user to a room.")
	EpInvites       = endpoint[Empty, InvitesResp]("invites", "The pending invites, and apart the requests of strangers.")
	EpInvitesPolicy = endpoint[PolicyReq, PolicyResp]("invites/policy", "Read or set who may invite this user.")
	EpRoomLeave     = endpoint[RoomReq, EventResp]("room/leave", "Leave a room.")
	EpRoomKick      = endpoint[RoomUserReq, EventResp]("room/kick", "Remove a member.")
	EpRoomBan       = endpoint[RoomUserReq, EventResp]("room/ban", "Ban a user.")
	EpRoomUnban     = endpoint[RoomUserReq, EventResp]("room/unban", "Lift a ban.")
	EpRoomRole      = endpoint[RoleReq, EventResp]("room/role", "Give a member a role.")
	EpRoomSet       = endpoint[RoomSetReq, EventResp]("room/set", "Set a room's name, topic or avatar.")
	EpDM            = endpoint[UserReq, RoomResp]("dm", "Open (or create) the direct-message room with a user.")
	EpProfileSet    = endpoint[ProfileSetReq, ProfileResp]("profile/set", "Set this user's display name or avatar.")
	EpProfileGet    = endpoint[UserReq, ProfileResp]("profile/get", "A user's profile.")
	EpBlock         = endpoint[UserReq, BlockedResp]("block", "Block a user.")
	EpUnblock       = endpoint[UserReq, BlockedResp]("unblock", "Unblock a user.")
	EpBlocked       = endpoint[Empty, BlockedResp]("blocked", "The blocked users.")
	EpRedact        = endpoint[RedactReq, EventResp]("redact", "Delete an event's content.")
)

// EpInvitesDecline forgets a pending invite.
var EpInvitesDecline = endpoint[RoomReq, RoomResp]("invites/decline", "Forget a pending invite (the inviter is not told).")

// RoomUserReq names a room and a user, with an optional reason (invite, kick, ban, unban).
type RoomUserReq struct {
	Room   string `json:"room"`
	User   string `json:"user"`
	Reason string `json:"reason,omitempty"`
}

// Invite is one pending invite for this user.
type Invite struct {
	Room    string `json:"room"`
	Inviter string `json:"inviter"`
	Name    string `json:"name"`
}

// InvitesResp answers EpInvites.
type InvitesResp struct {
	Invites []Invite `json:"invites"` // from contacts: users who share a joined room with this user, or whom it verified
	// Requests are the invites from strangers, kept apart (at most 64; a
	// new one displaces the oldest); accepted (room join) or declined like
	// invites. RequestsDropped counts the requests over a stranger's rate
	// (3, then one per 10 minutes) dropped since the node started.
	Requests        []Invite `json:"requests"`
	RequestsDropped uint64   `json:"requests_dropped"`
}

// PolicyReq sets who may send this user invites: anyone, contacts (users
// sharing a room with this user) or nobody. An empty policy only reads it.
type PolicyReq struct {
	Policy string `json:"policy,omitempty"`
}

// PolicyResp answers EpInvitesPolicy.
type PolicyResp struct {
	Policy string `json:"policy"`
}

// RoleReq changes a member's role: admin, moderator, member or a power level number.
type RoleReq struct {
	Room string `json:"room"`
	User string `json:"user"`
	Role string `json:"role"`
}

// RoomSetReq changes a room's profile; nil fields stay as they are.
type RoomSetReq struct {
	Room   string  `json:"room"`
	Name   *string `json:"name,omitempty"`
	Topic  *string `json:"topic,omitempty"`
	Avatar []byte  `json:"avatar,omitempty"` // image bytes (older clients; imported into the media store)
	// AvatarPath is an image file the daemon imports into the media store
	// (absolute: the daemon reads it itself).
	AvatarPath string `json:"avatar_path,omitempty"`
}

// UserReq names a user.
type UserReq struct {
	User string `json:"user,omitempty"`
}

// ProfileSetReq changes this user's display name and avatar; nil fields stay.
type ProfileSetReq struct {
	Name       *string `json:"name,omitempty"`
	Avatar     []byte  `json:"avatar,omitempty"`      // image bytes (older clients)
	AvatarPath string  `json:"avatar_path,omitempty"` // as RoomSetReq.AvatarPath
}

// ProfileResp answers profile/set and profile/get.
type ProfileResp struct {
	User        string       `json:"user"`
	DisplayName string       `json:"display_name"`
	Avatar      string       `json:"avatar"` // CID#KEY of a media avatar, the ID of an old blob event, or ""
	AvatarMedia *AvatarMedia `json:"avatar_media,omitempty"`
}

// AvatarMedia is an avatar image in the media store: fetch it with
// `media get CID#KEY`.
type AvatarMedia struct {
	CID    string `json:"cid"`
	Key    string `json:"key"`
	MIME   string `json:"mime"`
	Width  uint32 `json:"width,omitempty"`
	Height uint32 `json:"height,omitempty"`
}

// BlockedResp answers block, unblock and blocked.
type BlockedResp struct {
	Blocked []string `json:"blocked"`
}

// RedactReq deletes a message.
type RedactReq struct {
	Room   string `json:"room"`
	Event  string `json:"event"`
	Reason string `json:"reason,omitempty"`
}

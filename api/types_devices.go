package api

// API methods and wire types for devices and verification (docs/cli.md
// "Devices and verification").

// Endpoints of devices and verification.
var (
	EpVerify       = endpoint[VerifyReq, VerifyResp]("verify", "A user's safety number; with confirm, mark the user verified.")
	EpDeviceList   = endpoint[UserReq, DeviceListResp]("device/list", "A user's devices.")
	EpDeviceLink   = endpoint[Empty, DeviceLinkResp]("device/link", "A one-time code to link a new device.")
	EpDeviceRevoke = endpoint[DeviceReq, DeviceRevokeResp]("device/revoke", "Remove a device from every encrypted room.")
)

// VerifyReq asks for the safety number with a user, or (Confirm) records
// that user as verified.
type VerifyReq struct {
	User    string `json:"user"`
	Confirm bool   `json:"confirm,omitempty"`
}

// VerifyResp answers EpVerify. SafetyNumber is 60 digits in twelve
// groups of five; Emoji are seven SAS emoji, EmojiNames their names.
type VerifyResp struct {
	User         string   `json:"user"`
	SafetyNumber string   `json:"safety_number,omitempty"`
	Emoji        []string `json:"emoji,omitempty"`
	EmojiNames   []string `json:"emoji_names,omitempty"`
	Verified     bool     `json:"verified"`
}

// Warning is a loud security notice: in `room info` (warnings) and as a
// {"kind":"warning"} line of `watch`.
type Warning struct {
	// Kind: "master_key_changed" (a member shows the display name of a
	// verified user under another master key) or "device_moved" (a device
	// this node knows under one user's master key presents a certificate
	// of another).
	Kind    string `json:"kind"`
	Room    string `json:"room,omitempty"`
	User    string `json:"user"`             // the user the warning is about (the new key)
	Was     string `json:"was,omitempty"`    // the user (master key) it was known as
	Device  string `json:"device,omitempty"` // device_moved: the device
	Message string `json:"message"`          // one line for people
}

// DeviceInfo is one device of a user.
type DeviceInfo struct {
	Device   string   `json:"device"`
	Name     string   `json:"name"`
	Current  bool     `json:"current"`  // this node's device
	Verified bool     `json:"verified"` // certified by a master key this user verified (or its own)
	Rooms    []string `json:"rooms"`    // encrypted rooms where it is a member device
}

// DeviceListResp answers EpDeviceList.
type DeviceListResp struct {
	User    string       `json:"user"`
	Devices []DeviceInfo `json:"devices"`
}

// DeviceLinkResp answers EpDeviceLink: a one-time code for
// `parley device join`, valid until ExpiresMS (Unix ms).
type DeviceLinkResp struct {
	Code      string `json:"code"`
	ExpiresMS int64  `json:"expires_ms"`
}

// DeviceReq names a device.
type DeviceReq struct {
	Device string `json:"device"`
}

// DeviceRevokeResp answers EpDeviceRevoke: the device and the removal
// event authored in each room.
type DeviceRevokeResp struct {
	Device string   `json:"device"`
	Events []string `json:"events"`
}

// DeviceJoinResult is what `parley device join` prints.
type DeviceJoinResult struct {
	User   string   `json:"user"`
	Device string   `json:"device"`
	Rooms  []string `json:"rooms"`
}

package node

import (
	"encoding/json"
	"errors"
	"io/fs"
	"slices"

	"github.com/parley-p2p/parley/crdt"
)

// Invite policies: who may send this user invites.
const (
	PolicyAnyone   = "anyone"
	PolicyContacts = "contacts" // users who share a room with this user
	PolicyNobody   = "nobody"
)

// prefs is what a node keeps for its own user beyond room logs: blocked
// users, the invite policy and the profile it publishes.
// The engine goroutine owns it; save writes it atomically.
type prefs struct {
	path  string // empty: not persisted (tests, simulations)
	saved []byte // the JSON last read or written, to go back to when a save fails

	Blocked     []string        `json:"blocked"`
	Policy      string          `json:"invite_policy"`
	Invites     []pendingInvite `json:"invites,omitempty"` // before invites.go kept them in the store: read once and moved there
	DisplayName string          `json:"display_name,omitempty"`
	Avatar      []byte          `json:"avatar,omitempty"`      // image bytes, published as a blob event in each room (before media avatars)
	AvatarLink  string          `json:"avatar_link,omitempty"` // a media avatar (avatars.go), published in each room; replaces Avatar
	Unhosted    []string        `json:"unhosted,omitempty"`    // rooms `room unhost` stopped keeping
	Verified    []verifiedUser  `json:"verified,omitempty"`    // users whose master key this user verified (devices.go)

	// Ephemeral signals (ephemeral.go): off switches and this user's presence.
	NoTyping   bool   `json:"no_typing,omitempty"`
	NoPresence bool   `json:"no_presence,omitempty"`
	Presence   string `json:"presence,omitempty"`
}

func loadPrefs(path string) (*prefs, error) {
	p := &prefs{path: path, Policy: PolicyAnyone}
	if path == "" {
		return p, nil
	}
	if err := readJSON(path, p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	p.path = path
	if p.Policy == "" {
		p.Policy = PolicyAnyone
	}
	p.saved, _ = json.Marshal(p)
	return p, nil
}

func (p *prefs) blocked(u crdt.UserID) bool { return slices.Contains(p.Blocked, u.String()) }

func (p *prefs) setBlocked(u crdt.UserID, on bool) {
	s := u.String()
	p.Blocked = slices.DeleteFunc(p.Blocked, func(x string) bool { return x == s })
	if on {
		p.Blocked = append(p.Blocked, s)
		slices.Sort(p.Blocked)
	}
}

// savePrefs asks the driver to save the preferences before the step's
// commits (Ready.Prefs). undo, if not nil, takes back what the step did
// besides changing the preferences, should the save fail (prefsFailed).
func (e *Engine) savePrefs(undo func()) {
	e.out.Prefs = true
	if undo != nil {
		e.prefsUndo = append(e.prefsUndo, undo)
	}
}

// prefsFailed goes back after a failed save: the preferences are as last
// saved already (prefs.save), the step's other changes are undone, newest
// first, and its local proposals fail (a profile change publishes nothing
// its preferences do not hold).
func (e *Engine) prefsFailed(err error) {
	for i := len(e.prefsUndo) - 1; i >= 0; i-- {
		e.prefsUndo[i]()
	}
	e.prefsUndo = nil
	e.failLocal("", err)
}

package api

// API method and wire types of the web app (docs/web.md).

// EpWebLogin mints a one-time login URL for the web app the daemon serves.
var EpWebLogin = endpoint[Empty, WebLoginResp]("web/login", "A one-time URL that logs a browser into the web app.")

// WebLoginResp answers EpWebLogin: the URL opens the app on the API
// address and carries a single-use token (in its fragment, so it never
// reaches a server log or a Referer) valid until Expires (Unix ms).
type WebLoginResp struct {
	URL     string `json:"url"`
	Expires int64  `json:"expires"`
}

package api

// API methods and wire types for history portability (docs/cli.md "History
// portability"; the file format is docs/protocol.md section 7).

// Endpoints of room archives.
var (
	EpExport = endpoint[ExportReq, ExportResp]("export", "Write a room's log to an archive file.")
	EpImport = endpoint[ImportReq, ImportResp]("import", "Read a room archive into the store.")
)

// ExportReq asks the daemon to write a room's archive to Out, an absolute
// path on the daemon's machine.
type ExportReq struct {
	Room    string `json:"room"`
	Out     string `json:"out"`
	NoMedia bool   `json:"no_media,omitempty"` // leave out the media blobs the messages reference
	// Progress, when set, names this export for EpProgress while it runs
	// (events read of the room's events).
	Progress string `json:"progress,omitempty"`
}

// ExportResp answers EpExport.
type ExportResp struct {
	Room   string `json:"room"`
	Events int    `json:"events"`
	Blobs  int    `json:"blobs"` // media blobs in the archive (files and thumbnails)
}

// ImportReq asks the daemon to verify and merge the archive at Path, an
// absolute path on the daemon's machine.
type ImportReq struct {
	Path string `json:"path"`
	// Progress, when set, names this import for EpProgress while it runs
	// (events taken in of the archive's events; the total is 0 while the
	// archive is read and verified).
	Progress string `json:"progress,omitempty"`
}

// ImportResp answers EpImport: the archive's room and event count, and
// how many of its events this node did not hold before.
type ImportResp struct {
	Room   string `json:"room"`
	Events int    `json:"events"`
	New    int    `json:"new"`
	Blocks int    `json:"blocks,omitempty"` // media blocks the archive carried, stored
}

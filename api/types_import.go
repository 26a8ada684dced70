package api

// API methods and wire types for importing other messengers' chat exports
// (docs/cli.md "History portability"; the imported extension is
// docs/protocol.md §5.2).

// Endpoints of chat imports.
var (
	EpImportChat = endpoint[ImportChatReq, ImportChatResp]("import/chat", "Import another messenger's chat export into a room.")
	EpProgress   = endpoint[ProgressReq, ProgressResp]("progress", "How far a running import, export or media get has come.")
)

// ProgressReq names a running operation by the Progress token its request
// carried (a client's own random string).
type ProgressReq struct {
	ID string `json:"id"`
}

// ProgressResp answers EpProgress: Done of Total units (messages for a
// chat import or a readable export, events for an archive's export or
// import, octets for a media get); Total is 0 while it is not known yet.
type ProgressResp struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// ImportChatReq asks the daemon to read the export at Path (an absolute
// path on the daemon's machine: a folder, a .zip or the export's main
// file) in Format (telegram, whatsapp, element, discord, slack) and post
// its messages, as imported, into Room, or into a new room named Name (the
// export's chat name when empty). Channel names the channel of a Slack
// export.
type ImportChatReq struct {
	Format  string `json:"format"`
	Path    string `json:"path"`
	Room    string `json:"room,omitempty"`
	Name    string `json:"name,omitempty"`
	Channel string `json:"channel,omitempty"`
	// Progress, when set, names this import for EpProgress while it runs
	// (8 to 64 characters of the client's choosing).
	Progress string `json:"progress,omitempty"`
}

// ImportChatResp answers EpImportChat with the counts of the import.
type ImportChatResp struct {
	Room     string `json:"room"`
	Created  bool   `json:"created,omitempty"` // the room was made for this import
	Messages int    `json:"messages"`          // messages in the export
	New      int    `json:"new"`               // messages posted now
	Existing int    `json:"existing"`          // messages an earlier import already posted
	Edits    int    `json:"edits"`             // edits posted now (sources that keep versions)
	Media    int    `json:"media"`             // files attached now
	// MediaMissing counts files the messages name that the export does
	// not include (each message says so in its text).
	MediaMissing int          `json:"media_missing"`
	Skipped      []ImportSkip `json:"skipped,omitempty"` // source entries not imported, and why
}

// ImportSkip is a source entry not imported.
type ImportSkip struct {
	Entry  string `json:"entry"`
	Reason string `json:"reason"`
}

// ImportedInfo is what history shows of an imported message: the source
// format, the original author (name and ID there), the original time (Unix
// milliseconds), when the source says it was edited, and its reactions
// there (key -> names; a count beyond the names is in ReactionCounts).
type ImportedInfo struct {
	From           string              `json:"from"`
	Author         string              `json:"author"`
	AuthorID       string              `json:"author_id,omitempty"`
	TS             int64               `json:"ts"`
	Edited         int64               `json:"edited,omitempty"`
	Reactions      map[string][]string `json:"reactions,omitempty"`
	ReactionCounts map[string]int      `json:"reaction_counts,omitempty"`
}

// Endpoint of the readable export.
var EpExportReadable = endpoint[ExportReadableReq, ExportReadableResp]("export/readable", "Write a room's history as a static HTML page, JSON lines or Markdown.")

// ExportReadableReq asks the daemon to write the room's messages in Format
// (html, jsonl or md) to Out, an absolute path on the daemon's machine: for
// html a folder (index.html and the decrypted files beside it in files/),
// else a file.
type ExportReadableReq struct {
	Room   string `json:"room"`
	Format string `json:"format"`
	Out    string `json:"out"`
	// Progress, when set, names this export for EpProgress while it runs
	// (messages written of the room's readable messages).
	Progress string `json:"progress,omitempty"`
}

// ExportReadableResp answers EpExportReadable.
type ExportReadableResp struct {
	Room     string `json:"room"`
	Out      string `json:"out"`
	Messages int    `json:"messages"`
	Files    int    `json:"files"`   // files decrypted beside the page
	Missing  int    `json:"missing"` // files this node does not hold whole
}

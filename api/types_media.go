package api

// API methods and wire types for media (docs/cli.md "Media").

import "time"

// MediaGCGrace is how long blobs this node added or fetched are kept by
// default (EpMediaGC).
const MediaGCGrace = time.Hour

// Endpoints of the media store.
var (
	EpMediaAdd = endpoint[MediaAddReq, MediaAddResp]("media/add", "Encrypt a file into the media store.")
	EpMediaGet = endpoint[MediaGetReq, MediaGetResp]("media/get", "Fetch, decrypt and write a blob.")
	EpMediaGC  = endpoint[MediaGCReq, MediaGCResp]("media/gc", "Free blobs no message refers to.")
)

// MediaAddReq asks the daemon to store a file. The daemon runs on the same
// machine as its clients and reads the file itself: Path must be absolute.
type MediaAddReq struct {
	Path string `json:"path"`
}

// MediaAddResp answers EpMediaAdd.
type MediaAddResp struct {
	CID  string `json:"cid"`  // the blob's root: its single block or its manifest
	Size int64  `json:"size"` // plaintext octets
	MIME string `json:"mime"`
	// Key is the random file key the blob is encrypted with, in unpadded
	// URL-safe base64. It is returned because it must later travel inside
	// the encrypted message that refers to the blob (the MIMI ExternalPart
	// of issue 5); it never goes to the network in the clear, and the
	// daemon does not keep it.
	Key string `json:"key"`
}

// MediaGetReq asks for a blob to be fetched (from the connected peers if
// it is not held), verified, decrypted with Key and written to Out, an
// absolute path, atomically (a temporary file renamed into place).
type MediaGetReq struct {
	CID string `json:"cid"`
	Key string `json:"key"` // base64, as MediaAddResp.Key
	Out string `json:"out"`
	// Progress, when set, names this fetch for EpProgress while it runs
	// (plaintext octets written of the file's size).
	Progress string `json:"progress,omitempty"`
}

// MediaGetResp answers EpMediaGet.
type MediaGetResp struct {
	CID  string `json:"cid"`
	Size int64  `json:"size"` // plaintext octets written
}

// MediaGCReq asks for a collection of the blobs nothing references
// (node/media_gc.go). GraceMS replaces the grace period (MediaGCGrace) during
// which blobs this node added or fetched are kept; 0 keeps none.
type MediaGCReq struct {
	GraceMS *int64 `json:"grace_ms,omitempty"`
}

// MediaGCResp answers EpMediaGC: the blobs freed (their root CIDs) and
// how many blocks were deleted.
type MediaGCResp struct {
	Blobs  []string `json:"blobs"`
	Blocks int      `json:"blocks"`
}

package media

import (
	"bytes"
	"encoding/binary"
	"path"
	"strings"
	"unicode/utf8"
)

// magic is the table of signatures Sniff knows, checked in order.
var magic = []struct {
	offset int
	sig    string
	mime   string
}{
	{0, "\x89PNG\r\n\x1a\n", "image/png"},
	{0, "\xff\xd8\xff", "image/jpeg"},
	{0, "GIF87a", "image/gif"},
	{0, "GIF89a", "image/gif"},
	{8, "WEBP", "image/webp"}, // after RIFF....
	{8, "WAVE", "audio/wav"},
	{8, "AVI ", "video/x-msvideo"},
	{0, "BM", "image/bmp"},
	{0, "fLaC", "audio/flac"},
	{0, "ID3", "audio/mpeg"},
	{0, "%PDF-", "application/pdf"},
	{0, "PK\x03\x04", "application/zip"},
	{0, "\x1f\x8b", "application/gzip"},
	{0, "7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"},
}

// extensions maps lower-case file extensions to types, for data without a
// known signature. (Package mime is not used: it reads system files.)
var extensions = map[string]string{
	".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8",
	".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
	".csv": "text/csv; charset=utf-8", ".json": "application/json", ".xml": "application/xml",
	".svg": "image/svg+xml", ".heic": "image/heic", ".avif": "image/avif",
	".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac", ".opus": "audio/ogg; codecs=opus",
	".ogg": "audio/ogg", ".oga": "audio/ogg", ".wav": "audio/wav", ".flac": "audio/flac",
	".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
	".mkv": "video/x-matroska", ".mka": "audio/x-matroska", ".3gp": "video/3gpp", ".pdf": "application/pdf", ".zip": "application/zip",
	".gz": "application/gzip", ".tar": "application/x-tar",
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
}

// Sniff returns the MIME type of a file from its first octets (a small
// magic-number table; Ogg codecs; ISO media brands and QuickTime atoms;
// the WebM or Matroska DocType; MPEG audio and ADTS frame headers) and,
// failing that, from name's extension; UTF-8 text without NULs is
// text/plain, the rest application/octet-stream. It reads at most 512
// octets; AudioInfo and VideoInfo refine the type from the file's tracks.
func Sniff(head []byte, name string) string {
	if len(head) > 512 {
		head = head[:512]
	}
	for _, m := range magic {
		if len(head) >= m.offset+len(m.sig) && string(head[m.offset:m.offset+len(m.sig)]) == m.sig {
			if m.offset == 8 && string(head[:4]) != "RIFF" {
				continue
			}
			return m.mime
		}
	}
	if len(head) >= 4 && string(head[:4]) == "OggS" {
		switch {
		case bytes.Contains(head, []byte("\x80theora")):
			return "video/ogg" // (with its sound track, if any)
		case bytes.Contains(head, []byte("OpusHead")):
			return "audio/ogg; codecs=opus"
		case bytes.Contains(head, []byte("\x01vorbis")):
			return "audio/ogg; codecs=vorbis"
		}
		return "audio/ogg"
	}
	if len(head) >= 12 && string(head[4:8]) == "ftyp" {
		var compat []string
		for i := 16; i+4 <= min(len(head), int(binary.BigEndian.Uint32(head))); i += 4 {
			compat = append(compat, string(head[i:i+4]))
		}
		return bmffMIME(string(head[8:12]), compat)
	}
	if len(head) >= 8 && quickTimeTops[string(head[4:8])] && string(head[4:8]) != "free" && string(head[4:8]) != "skip" {
		return "video/quicktime" // QuickTime without ftyp
	}
	if len(head) >= 4 && string(head[:4]) == "\x1a\x45\xdf\xa3" {
		if bytes.Contains(head, []byte("\x42\x82\x88matroska")) {
			return "video/x-matroska"
		}
		return "video/webm"
	}
	if _, ok := mpegHeader(head); ok {
		return "audio/mpeg" // MPEG audio frame header
	}
	if len(head) >= 7 && head[0] == 0xff && head[1]&0xf6 == 0xf0 && head[2]>>2&0x0f < 13 {
		return "audio/aac" // ADTS frame header
	}
	if t, ok := extensions[strings.ToLower(path.Ext(name))]; ok {
		return t
	}
	if isText(head) {
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

func isText(b []byte) bool {
	if len(b) == 0 || bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	// A multi-octet sequence cut at the end of head is fine.
	for i := 0; i < 3 && len(b) > 0 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1]
	}
	return utf8.Valid(b)
}

// Package calls runs a device's own WebRTC peer (pion/webrtc) in one call
// of a room: a full mesh of at most MaxPeers devices that follows the mesh
// and glare rules of docs/protocol.md 5.3. It sends an audio file (Ogg
// Opus as is, a 16-bit PCM WAV encoded to G.711 µ-law) or silence, in a
// video call also a VP8 video (an IVF file, or a test pattern that its own
// key-frame encoder makes, vp8.go), and records what each other device
// sends into a directory (Ogg for Opus, WAV for G.711, IVF for video).
//
// It does not sign, seal or route signals, nor author call events: it
// talks to the signalling through the Signaller it is given and is fed the
// signals addressed to its device (package node wires both). It must not
// import node. Each Call's peers are owned by its Serve goroutine; pion's
// callbacks only post to it.
package calls

// Voice and video calls in the web app (docs/web.md "Calls", docs/protocol.md
// 5.3). The node carries the signalling: call.start/join/leave author the
// call's timeline events, call.signal sends one offer, answer, ICE candidate
// or hang-up to one device, sealed and signed, and the watch stream brings
// back the signals addressed to this device (items of kind "call"). Media
// goes browser to browser (or to a daemon's own peer) over WebRTC, as a full
// mesh: the joiner offers to every participant already in the call; when two
// devices offer to each other, the offer of the one whose "user/device"
// sorts lower wins. Each side checks the remote DTLS certificate against the
// fingerprint of the signed SDP (the browser does, and this module checks
// it again from getStats and drops a session that does not match).
//
// app.js calls in through the exported hooks; this module owns the call
// screen, the incoming-call alert, the ringing and the peer connections.

import { h, clear } from './dom.js';
import { icon, PATHS } from './icons.js';
import { call as api } from './api.js';

Object.assign(PATHS, {
  phone: 'M5 4h4l2 5-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2z',
  hangup: 'M12 9c-3.3 0-6.4 1-8.8 2.8a1.6 1.6 0 0 0-.2 2.3l1.6 1.9c.5.6 1.4.7 2 .3l2.4-1.6c.4-.3.6-.8.6-1.3v-1.8a11 11 0 0 1 4.8 0v1.8c0 .5.2 1 .6 1.3l2.4 1.6c.6.4 1.5.3 2-.3l1.6-1.9a1.6 1.6 0 0 0-.2-2.3A14.6 14.6 0 0 0 12 9z',
  video: 'M3 7h12v10H3zM15 10.5 21 7v10l-6-3.5',
  videoOff: 'M3 7h12v10H3zM15 10.5 21 7v10l-6-3.5M2 3l20 18',
  mic: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3',
  micOff: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3M3 3l18 18',
  screen: 'M3 4h18v12H3zM8 20h8M12 16v4M9 10l3-3 3 3M12 7v6',
  minimize: 'M4 14h6v6M20 10h-6V4M14 10l7-7M3 21l7-7',
  people: 'M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM2 21a7 7 0 0 1 14 0M16 3.5a4 4 0 0 1 0 7.5M22 21a7 7 0 0 0-4-6.3',
});

const NO_ANSWER_MS = 60e3; // a call nobody answers is hung up (shown as missed)
const RING_MS = 60e3;      // an incoming call rings this long at most
const RING_FRESH_MS = 45e3; // a start event older than this does not ring
const FAILED_MS = 30e3;
const RESEND_MS = 4000;    // an offer not answered in this time is sent again    // a peer whose connection stays failed this long is dropped
const CAMERA = { width: { ideal: 960 }, height: { ideal: 540 }, frameRate: { ideal: 24 } };
// In a group, each sender sends one stream per peer (a mesh): smaller and
// lighter from the third participant on.
const GROUP_VIDEO = { maxBitrate: 600e3, scaleResolutionDownBy: 1.5 };
const PAIR_VIDEO = { maxBitrate: 1500e3, scaleResolutionDownBy: 1 };

let app = null; // hooks of app.js: me(), nameOf(user), toast(text), current(), roomName(id)

const C = {
  active: null,          // the call this tab is in (see enterCall)
  running: new Map(),    // room -> the room's running call (CallInfo) or null
  ring: null,            // the incoming call ringing now
  head: null,            // {room, slot}: the open room's call buttons
};

// initCalls wires the module to the app.
export function initCalls(hooks) {
  app = hooks;
  // Browsers start audio only after a user gesture: the first one unlocks
  // the ringer's AudioContext for later rings.
  const unlock = () => { try { audio(); } catch { /* no WebAudio */ } };
  document.addEventListener('pointerdown', unlock, { once: true, capture: true });
  document.addEventListener('keydown', unlock, { once: true, capture: true });
  // A closed tab leaves its call, so the device can join again.
  window.addEventListener('pagehide', () => {
    const A = C.active;
    if (!A) return;
    fetch('/v1/call.leave', { method: 'POST', keepalive: true, headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ room: A.room, call: A.id }) }).catch(() => {});
  });
  setInterval(tick, 1000);
}

const myKey = () => `${app.me().user}/${app.me().device}`;
const keyOf = (user, device) => `${user}/${device}`;

// ---- the room header ----

// callButtons is the room header's call slot: Start voice call and Start
// video call, or Join call while a call runs in the room.
export function callButtons(room) {
  const slot = h('div', { class: 'call-buttons' });
  C.head = { room, slot };
  renderButtons(room);
  refreshRunning(room);
  return slot;
}

function renderButtons(room) {
  if (!C.head || C.head.room !== room) return;
  const slot = C.head.slot;
  const run = C.running.get(room);
  const A = C.active;
  clear(slot);
  if (A && A.room === room) {
    if (A.stage.classList.contains('mini')) {
      slot.append(h('button', { class: 'btn call-live', type: 'button', onclick: () => showStage(true) }, icon('phone'), 'Show call'));
    }
    return;
  }
  if (run && !(A && A.id === run.call)) {
    slot.append(h('button', { class: 'btn call-join', type: 'button', onclick: () => joinCall(room, run) },
      icon(run.video ? 'video' : 'phone'), 'Join call', h('span', { class: 'call-count', 'aria-hidden': 'true' }, String(run.participants.length))));
    return;
  }
  slot.append(
    h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Start voice call', title: 'Start voice call', onclick: () => startCall(room, false) }, icon('phone')),
    h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Start video call', title: 'Start video call', onclick: () => startCall(room, true) }, icon('video')));
}

// refreshRunning re-reads the room's running calls.
async function refreshRunning(room) {
  let res;
  try {
    res = await api('calls', { room });
  } catch { return; }
  const run = (res.calls || [])[0] || null;
  C.running.set(room, run);
  renderButtons(room);
  const A = C.active;
  if (A && A.room === room) {
    const mine = (res.calls || []).find((c) => c.call === A.id);
    if (mine) {
      A.members = new Map(mine.participants.map((p) => [keyOf(p.user, p.device), p]));
      renderPeople();
    }
  }
}

// callsReady runs on every (re)connect of the live stream.
export function callsReady() {
  if (C.head) refreshRunning(C.head.room);
  if (C.active) refreshRunning(C.active.room);
}

// ---- the timeline ----

// callShown says whether a timeline entry is a call event the app shows.
export const callShown = (ev) => ev.type === 'call' && !!ev.call;

function kindOf(c) {
  return c.video ? 'video call' : 'voice call';
}

// callNotice renders a call event of the timeline.
export function callNotice(ev, when) {
  const c = ev.call;
  const who = app.nameOf(ev.sender);
  let text;
  let cls = '';
  switch (c.action) {
    case 'start': text = `${who} started a ${kindOf(c)}`; break;
    case 'join': text = `${who} joined the call`; break;
    case 'leave': text = `${who} left the call`; break;
    default:
      if (c.missed) {
        cls = ' missed';
        text = ev.sender === app.me().user ? 'Call not answered' : `Missed call from ${who}`;
      } else {
        text = `Call ended · ${duration(c.duration_ms || 0)}`;
      }
  }
  const big = c.action === 'start' || c.action === 'end';
  return h('article', { class: 'notice call-note' + cls + (big ? '' : ' small-note'), 'data-id': ev.id },
    big ? h('span', { class: 'call-note-icon', 'aria-hidden': 'true' }, icon(c.action === 'end' && !c.missed ? 'hangup' : c.video ? 'video' : 'phone')) : null,
    h('span', {}, text), ' ', h('time', { class: 'muted' }, when));
}

function duration(ms) {
  const s = Math.round(ms / 1000);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor(s / 60) % 60;
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

// onCallEvent takes a call timeline event of any room from the live stream.
export function onCallEvent(room, ev) {
  const c = ev.call;
  if (!c) return;
  refreshRunning(room);
  const A = C.active;
  const me = app.me();
  if (A && A.id === c.call) {
    const key = keyOf(ev.sender, c.device);
    if (key === myKey()) return;
    if (c.action === 'join' || c.action === 'start') {
      // The joiner offers; should it not have seen this device in the call
      // (both joined at once), offer after a while.
      const wait = myKey() < key ? 2000 : 4000;
      setTimeout(() => {
        if (C.active === A && !A.peers.has(key) && !A.gone.has(key)) offerTo(ev.sender, c.device);
      }, wait);
    } else if (c.action === 'leave') {
      A.gone.add(key);
      A.members.delete(key);
      const p = A.peers.get(key);
      if (p) dropPeer(p, 'left');
      else alone(A);
    } else if (c.action === 'end') {
      hangUp(false);
    }
    return;
  }
  const R = C.ring;
  if (R && R.call === c.call) {
    if (c.action === 'end' || (ev.sender === me.user && c.device === me.device)) stopRinging();
    else if (c.action === 'join' && ev.sender === me.user) stopRinging(); // answered on another device
    return;
  }
  if (c.action === 'start' && ev.sender !== me.user && !A && !R && Date.now() - ev.ts < RING_FRESH_MS) {
    incoming(room, ev);
  }
}

// ---- signals ----

// onCallSignal takes a signal addressed to this device (watch kind "call").
export async function onCallSignal(it) {
  const s = it.call_signal;
  const A = C.active;
  // Another device of this user declined the call ringing here.
  if (s && s.op === 'decline' && s.from_user === app.me().user) {
    if (C.ring && C.ring.call === s.call) stopRinging();
    return;
  }
  if (!s || !A || A.id !== s.call || A.room !== it.room) return;
  const key = keyOf(s.from_user, s.from_device);
  if (key === myKey()) return;
  if (s.op === 'decline') return onDecline(A, s);
  if (s.op === 'state') {
    A.states.set(key, { muted: !!s.muted, videoOff: !!s.video_off });
    return renderStage();
  }
  if (s.op === 'hangup') {
    A.gone.add(key);
    const p = A.peers.get(key);
    if (p) dropPeer(p, 'hung up');
    return;
  }
  // Signals of one peer are handled in order.
  const prev = A.inbox.get(key) || Promise.resolve();
  const next = prev.then(() => handleSignal(A, key, s)).catch((e) => console.warn('call signal', s.op, e));
  A.inbox.set(key, next);
}

async function handleSignal(A, key, s) {
  if (C.active !== A) return;
  let p = A.peers.get(key);
  if (s.op === 'offer') {
    A.gone.delete(key);
    // Glare: the offer of the lower "user/device" wins; the other side
    // rolls its own offer back (implicitly, in setRemoteDescription) and
    // answers on the same connection, so that its own offer, should it
    // arrive late, meets a session of the same connection.
    if (p && (p.makingOffer || p.pc.signalingState !== 'stable') && myKey() < key) return;
    if (p) {
      try {
        await p.pc.setRemoteDescription({ type: 'offer', sdp: s.sdp });
      } catch {
        dropPeer(p, null); // not a renegotiation of this session: a new one
        p = null;
      }
    }
    if (!p) {
      p = newPeer(A, s.from_user, s.from_device);
      await p.pc.setRemoteDescription({ type: 'offer', sdp: s.sdp });
    }
    p.remoteSDP = s.sdp;
    await attachLocal(A, p);
    await p.pc.setLocalDescription(await p.pc.createAnswer());
    send(A, p, 'answer', { sdp: p.pc.localDescription.sdp });
    await flushCandidates(A, p);
  } else if (s.op === 'answer') {
    if (!p || p.pc.signalingState !== 'have-local-offer') return;
    await p.pc.setRemoteDescription({ type: 'answer', sdp: s.sdp });
    p.remoteSDP = s.sdp;
    await flushCandidates(A, p);
  } else if (s.op === 'candidate') {
    let cand;
    try { cand = JSON.parse(s.candidate || '{}'); } catch { return; }
    if (!p || !p.pc.remoteDescription) {
      if (!A.pending.has(key)) A.pending.set(key, []);
      A.pending.get(key).push(cand);
      return;
    }
    await addCandidate(p, cand);
  }
}

async function flushCandidates(A, p) {
  const list = A.pending.get(p.key) || [];
  A.pending.delete(p.key);
  for (const c of list) await addCandidate(p, c);
}

async function addCandidate(p, cand) {
  try {
    if (!cand.candidate) {
      if (cand.sdpMid != null || cand.sdpMLineIndex != null) await p.pc.addIceCandidate(cand);
      return; // end of candidates
    }
    await p.pc.addIceCandidate(cand);
  } catch { /* a candidate of an earlier session of this peer */ }
}

// send sends one signal to a peer; a peer's signals leave in order.
function send(A, p, op, fields = {}) {
  const req = { room: A.room, call: A.id, to_user: p.user, to_device: p.device, op, ...fields };
  p.out = p.out.then(() => api('call.signal', req)).catch((e) => {
    if (op !== 'candidate' && op !== 'hangup') console.warn('call.signal', op, e.message);
  });
  return p.out;
}

async function onDecline(A, s) {
  A.declined.add(s.from_user);
  app.toast(`${app.nameOf(s.from_user)} declined the call`);
  if (A.peers.size > 0 || A.connectedAt) return;
  // Everyone else in the room declined: nobody is left to answer.
  let info;
  try { info = await api('room/info', { room: A.room }); } catch { return; }
  const others = (info.members || []).filter((m) => m.membership === 'join' && m.user !== app.me().user);
  if (C.active === A && A.peers.size === 0 && others.every((m) => A.declined.has(m.user))) hangUp(true);
}

// ---- peers ----

function newPeer(A, user, device) {
  const key = keyOf(user, device);
  const pc = new RTCPeerConnection({ iceServers: A.iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
  const p = { key, user, device, pc, makingOffer: false, out: Promise.resolve(), stream: new MediaStream(),
    audio: null, video: null, remoteSDP: '', verified: false, created: Date.now(), connectedOnce: false, cands: [], failedSince: 0, frames: 0, videoOn: false, speaking: false, tile: null };
  A.peers.set(key, p);
  pc.onicecandidate = (e) => {
    const c = JSON.stringify(e.candidate ? e.candidate.toJSON() : { candidate: '' });
    p.cands.push(c);
    send(A, p, 'candidate', { candidate: c });
  };
  pc.ontrack = (e) => {
    if (!p.stream.getTracks().includes(e.track)) p.stream.addTrack(e.track);
    const v = p.tile && p.tile.video;
    if (v && v.srcObject !== p.stream) v.srcObject = p.stream;
    if (v) v.play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    const st = pc.connectionState;
    if (st === 'connected') {
      p.failedSince = 0;
      p.connectedOnce = true;
      if (!A.connectedAt) {
        A.connectedAt = Date.now();
        ringer.stop();
      }
      A.ever = true;
      tune(A);
      if (A.muted || camState(A)) sendState(A, p);
    } else if (st === 'failed' || st === 'disconnected') {
      if (!p.failedSince) p.failedSince = Date.now();
    }
    renderStage();
  };
  p.tile = tile(A, p);
  renderStage();
  return p;
}

// attachLocal sends this device's tracks on a peer's transceivers (an
// answerer's transceivers come from the offer).
async function attachLocal(A, p) {
  // The transceivers the offer's sections are bound to (after a rollback,
  // this side's own may be left unbound).
  const bound = { audio: null, video: null };
  for (const t of p.pc.getTransceivers()) {
    const kind = t.receiver.track.kind;
    if (t.mid !== null && !bound[kind] && t.currentDirection !== 'stopped') bound[kind] = t;
  }
  p.audio = bound.audio || p.audio;
  p.video = bound.video || p.video;
  for (const t of p.pc.getTransceivers()) {
    if (t !== p.audio && t !== p.video && t.mid === null && t.currentDirection !== 'stopped') {
      await t.sender.replaceTrack(null);
      try { t.stop(); } catch { /* already stopped */ }
    }
  }
  for (const [t, track] of [[p.audio, A.mic], [p.video, sentVideo(A)]]) {
    if (!t || t.currentDirection === 'stopped') continue;
    t.direction = 'sendrecv';
    await t.sender.replaceTrack(track || null);
    if (t.sender.setStreams) t.sender.setStreams(A.local);
  }
}

// camState says whether this device's camera is off in a call that has
// one (a voice call's missing camera is not news to the others).
const camState = (A) => !!A.cam && A.camOff && !A.screen;

// sendState tells a peer whether this device is muted and its camera off.
function sendState(A, p) {
  send(A, p, 'state', { muted: A.muted, video_off: camState(A) });
}

// sentVideo is the video track this device sends: the screen while shared,
// else the camera (null in a voice call until the camera is turned on).
function sentVideo(A) {
  return A.screen || (A.camOff ? null : A.cam);
}

// offerTo opens a session to a participant: this device offers.
async function offerTo(user, device) {
  const A = C.active;
  const key = keyOf(user, device);
  if (!A || A.peers.has(key) || key === myKey()) return;
  const p = newPeer(A, user, device);
  p.audio = p.pc.addTransceiver(A.mic || 'audio', { direction: 'sendrecv', streams: [A.local] });
  p.video = p.pc.addTransceiver(sentVideo(A) || 'video', { direction: 'sendrecv', streams: [A.local] });
  preferCodecs(p.video);
  p.makingOffer = true;
  try {
    await p.pc.setLocalDescription(await p.pc.createOffer());
    const sdp = p.pc.localDescription.sdp;
    send(A, p, 'offer', { sdp });
    resendOffer(A, p, sdp);
  } catch (e) {
    console.warn('offer', e);
    dropPeer(p, null);
  } finally {
    p.makingOffer = false;
  }
}

// resendOffer sends an unanswered offer again, with the candidates sent so
// far, every RESEND_MS: signals travel as best-effort ephemeral messages,
// and a lost offer or answer would leave the session waiting. A repeated
// offer meets the same session on the other side (an answer again).
function resendOffer(A, p, sdp) {
  setTimeout(() => {
    if (C.active !== A || A.peers.get(p.key) !== p || p.pc.signalingState !== 'have-local-offer' ||
      !p.pc.localDescription || p.pc.localDescription.sdp !== sdp) return;
    send(A, p, 'offer', { sdp });
    for (const c of p.cands) send(A, p, 'candidate', { candidate: c });
    resendOffer(A, p, sdp);
  }, RESEND_MS);
}

// preferCodecs keeps the common video codecs (VP8, VP9, H.264, AV1 and
// their retransmission), which keeps an offer well under the node's bound
// on a signal's SDP.
function preferCodecs(t) {
  if (!t || !t.setCodecPreferences || !window.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities) return;
  const caps = RTCRtpReceiver.getCapabilities('video');
  if (!caps) return;
  const keep = caps.codecs.filter((c) => {
    const m = c.mimeType.toLowerCase();
    if (m === 'video/h264') return /packetization-mode=1/.test(c.sdpFmtpLine || '') && /profile-level-id=42e01f/.test(c.sdpFmtpLine || '');
    if (m === 'video/vp9') return !/profile-id=[123]/.test(c.sdpFmtpLine || '');
    return m === 'video/vp8' || m === 'video/av1' || m === 'video/rtx';
  });
  try { t.setCodecPreferences(keep); } catch { /* keep the default */ }
}

// dropPeer closes a session; why (shown) null: replaced quietly.
function dropPeer(p, why) {
  const A = C.active;
  p.pc.onicecandidate = p.pc.ontrack = p.pc.onconnectionstatechange = null;
  p.pc.close();
  if (A && A.peers.get(p.key) === p) A.peers.delete(p.key);
  if (p.tile) p.tile.el.remove();
  if (!A) return;
  if (why === 'left' || why === 'hung up') A.members.delete(p.key);
  tune(A);
  renderStage();
  // A hang-up signal comes before its leave event: this device leaves once
  // that event is in (so that its node, seeing no one left, ends the call).
  // A session lost or unreachable is tried again (retry).
  if (why === 'left') alone(A);
}

// tune sets the video each peer gets by the size of the call.
function tune(A) {
  const want = A.peers.size >= 2 ? GROUP_VIDEO : PAIR_VIDEO;
  for (const p of A.peers.values()) {
    const sender = p.video && p.video.sender;
    if (!sender || p.pc.connectionState !== 'connected') continue;
    const prm = sender.getParameters();
    if (!prm.encodings || !prm.encodings.length) continue;
    const e = prm.encodings[0];
    if (e.maxBitrate === want.maxBitrate && e.scaleResolutionDownBy === want.scaleResolutionDownBy) continue;
    Object.assign(e, want);
    sender.setParameters(prm).catch(() => {});
  }
}

// alone ends this device's part when everyone else has gone.
function alone(A) {
  if (C.active === A && A.ever && A.peers.size === 0) hangUp(false);
}

// ---- starting, joining, leaving ----

async function media(video) {
  const audioC = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: audioC, video: video ? CAMERA : false });
  } catch (e) {
    if (!video) throw e;
    app.toast('No camera: joining with the microphone only');
    return navigator.mediaDevices.getUserMedia({ audio: audioC });
  }
}

// hasMethod says whether the node serves an API method (from its OpenAPI
// document, read once): asking a node without call.ice_servers would log a
// failed request in the console on every call.
let methods = null;
function hasMethod(name) {
  if (!methods) {
    methods = fetch('/api/openapi.json').then((r) => (r.ok ? r.json() : {})).then((d) => new Set(Object.keys(d.paths || {})), () => new Set());
  }
  return methods.then((m) => m.has('/v1/' + name));
}

async function iceServers(room) {
  if (!(await hasMethod('call.ice_servers'))) return [];
  try {
    // A slow answer (relays asked for credentials) must not hold the call up.
    const slow = new Promise((_, no) => setTimeout(() => no(new Error('slow')), 2000));
    const r = await Promise.race([api('call.ice_servers', { room }), slow]);
    return (r.ice_servers || []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
  } catch {
    return []; // no STUN/TURN from the node: host candidates (enough on a LAN and on loopback)
  }
}

function askNotifications() {
  if (window.Notification && Notification.permission === 'default') Notification.requestPermission().catch(() => {});
}

// prepare gets the microphone (and camera) and the ICE servers for a call
// this tab starts or joins; null: it cannot.
async function prepare(room, video) {
  if (C.active) {
    app.toast('You are in a call already');
    return null;
  }
  askNotifications();
  audio();
  try {
    const [local, ice] = await Promise.all([media(video), iceServers(room)]);
    return { local, ice };
  } catch (e) {
    app.toast(`No microphone: ${e.message}`);
    return null;
  }
}

// startCall starts a call in the room (or joins the one running there).
async function startCall(room, video) {
  const got = await prepare(room, video);
  if (!got) return;
  const { local, ice } = got;
  let res;
  try {
    res = await api('call.start', { room, video });
  } catch (e) {
    stopTracks(local);
    return app.toast(e.message);
  }
  await enterCall(room, res.call, video, local, ice, true);
}

// joinCall joins a running call.
async function joinCall(room, run) {
  if (!C.active) stopRinging();
  const got = await prepare(room, run.video);
  if (!got) return;
  const { local, ice } = got;
  // The offers to the participants known go out while the join is
  // authored.
  await enterCall(room, run.call, run.video, local, ice, false, run.participants, api('call.join', { room, call: run.call }));
}

// enterCall makes this tab a participant of a call it started or joined,
// and offers to every participant known (known: the ones already known,
// such as the caller of a ringing call, offered to at once).
async function enterCall(room, id, video, local, ice, starter, known = [], joined = null) {
  const A = {
    room, id, video, local, iceServers: ice, starter,
    mic: local.getAudioTracks()[0] || null, cam: local.getVideoTracks()[0] || null, screen: null, screenStream: null,
    muted: false, camOff: !local.getVideoTracks().length,
    peers: new Map(), pending: new Map(), inbox: new Map(), members: new Map(), gone: new Set(), declined: new Set(), states: new Map(),
    startedAt: Date.now(), connectedAt: 0, ever: false, stage: null, self: null,
  };
  C.active = A;
  buildStage(A);
  renderButtons(room);
  for (const p of known) {
    A.members.set(keyOf(p.user, p.device), p);
    offerTo(p.user, p.device);
  }
  if (joined) {
    try {
      await joined;
    } catch (e) {
      app.toast(e.message);
      A.left = true; // not in the call: nothing to leave
      return hangUp(true);
    }
  }
  let info = null;
  try {
    const res = await api('calls', { room });
    info = (res.calls || []).find((c) => c.call === id) || null;
  } catch { /* offers follow the join events */ }
  if (C.active !== A) return;
  if (info) {
    A.members = new Map(info.participants.map((p) => [keyOf(p.user, p.device), p]));
    // The joiner offers: a call this device started is offered to by those
    // who joined it (an offer back would only cross theirs).
    if (!(starter && info.started_by === app.me().user)) {
      for (const p of info.participants) offerTo(p.user, p.device);
    }
  }
  const others = [...A.members.keys()].filter((k) => k !== myKey());
  if (starter && others.length === 0) {
    ringer.start('out');
    setTimeout(() => {
      if (C.active === A && !A.ever) {
        app.toast('No answer');
        hangUp(true);
      }
    }, NO_ANSWER_MS);
  }
  renderStage();
}

// hangUp leaves the call: a hang-up to every peer, then call.leave.
async function hangUp(tellPeers = true) {
  const A = C.active;
  if (!A) return;
  C.active = null;
  ringer.stop();
  const bye = [];
  for (const p of A.peers.values()) {
    if (tellPeers) bye.push(send(A, p, 'hangup'));
    p.pc.close();
  }
  stopTracks(A.local);
  stopTracks(A.screenStream);
  A.stage.remove();
  document.body.classList.remove('in-call');
  await Promise.race([Promise.allSettled(bye), new Promise((r) => setTimeout(r, 1500))]);
  if (A.left) return refreshRunning(A.room);
  try {
    await api('call.leave', { room: A.room, call: A.id });
  } catch { /* the call ended already */ }
  refreshRunning(A.room);
}

function stopTracks(s) {
  if (s) for (const t of s.getTracks()) t.stop();
}

// ---- controls ----

function toggleMute() {
  const A = C.active;
  A.muted = !A.muted;
  if (A.mic) A.mic.enabled = !A.muted;
  for (const p of A.peers.values()) sendState(A, p);
  renderStage();
}

async function toggleCamera() {
  const A = C.active;
  if (A.cam) {
    // Off: nothing is sent (the others show the initial), and the camera
    // track is disabled.
    A.camOff = !A.camOff;
    A.cam.enabled = !A.camOff;
    if (!A.screen) await sendVideo(A, sentVideo(A));
    for (const p of A.peers.values()) sendState(A, p);
    return renderStage();
  }
  // A voice call: turn the camera on.
  let s;
  try {
    s = await navigator.mediaDevices.getUserMedia({ video: CAMERA });
  } catch (e) { return app.toast(`No camera: ${e.message}`); }
  if (C.active !== A) return stopTracks(s);
  A.cam = s.getVideoTracks()[0];
  A.local.addTrack(A.cam);
  A.camOff = false;
  if (!A.screen) await sendVideo(A, A.cam);
  for (const p of A.peers.values()) sendState(A, p);
  renderStage();
}

async function toggleScreen() {
  const A = C.active;
  if (A.screen) return stopScreen(A);
  let s;
  try {
    s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) { return app.toast(`Screen sharing did not start: ${e.message}`); }
  if (C.active !== A) return stopTracks(s);
  A.screenStream = s;
  A.screen = s.getVideoTracks()[0];
  A.screen.addEventListener('ended', () => { if (C.active === A && A.screen) stopScreen(A); });
  await sendVideo(A, A.screen);
  renderStage();
}

async function stopScreen(A) {
  stopTracks(A.screenStream);
  A.screen = A.screenStream = null;
  await sendVideo(A, sentVideo(A));
  renderStage();
}

async function sendVideo(A, track) {
  for (const p of A.peers.values()) {
    if (p.video && p.video.currentDirection !== 'stopped') {
      try { await p.video.sender.replaceTrack(track || null); } catch { /* closed */ }
    }
  }
}

function showStage(full) {
  const A = C.active;
  if (!A) return;
  A.stage.classList.toggle('mini', !full);
  A.btnMin.setAttribute('aria-pressed', String(!full));
  renderButtons(A.room);
  renderStage();
}

// ---- incoming calls ----

function incoming(room, ev) {
  const c = ev.call;
  const who = app.nameOf(ev.sender);
  const what = c.video ? 'Incoming video call' : 'Incoming voice call';
  const roomName = app.roomName(room);
  const titleID = 'call-in-' + c.call;
  const run = { call: c.call, room, video: !!c.video, participants: [{ user: ev.sender, device: c.device, name: who }] };
  const el = h('div', { class: 'call-incoming', role: 'alertdialog', 'aria-label': 'Incoming call', 'aria-describedby': titleID },
    h('div', { class: 'call-in-who' },
      h('span', { class: 'avatar call-pulse', 'aria-hidden': 'true', style: `--h:${hue(ev.sender)}` }, initial(who)),
      h('div', { id: titleID, class: 'call-in-text' }, h('strong', {}, who), h('span', { class: 'muted small' }, `${what} · ${roomName}`))),
    h('div', { class: 'call-in-actions' },
      h('button', { class: 'round-btn decline', type: 'button', 'aria-label': 'Decline', title: 'Decline', onclick: () => decline(room, c.call) }, icon('hangup')),
      h('button', { class: 'round-btn accept', type: 'button', 'aria-label': 'Accept', title: 'Accept', onclick: () => joinCall(room, run) }, icon(c.video ? 'video' : 'phone'))));
  document.body.append(el);
  C.ring = { call: c.call, room, el, note: null, timer: setTimeout(stopRinging, RING_MS) };
  ringer.start('in');
  if (document.hidden && window.Notification && Notification.permission === 'granted') {
    try {
      const n = new Notification(what, { body: `${who} · ${roomName}`, tag: 'call-' + c.call, requireInteraction: true });
      n.onclick = () => { window.focus(); location.hash = 'room=' + room; n.close(); };
      C.ring.note = n;
    } catch { /* notifications unavailable */ }
  }
}

function stopRinging() {
  const R = C.ring;
  if (!R) return;
  C.ring = null;
  clearTimeout(R.timer);
  R.el.remove();
  if (R.note) R.note.close();
  if (ringer.kind === 'in') ringer.stop();
}

async function decline(room, id) {
  stopRinging();
  try {
    await api('call.decline', { room, call: id });
  } catch (e) { app.toast(e.message); }
}

// ---- sound ----

let actx = null;
function audio() {
  if (!actx) actx = new AudioContext();
  if (actx.state === 'suspended') actx.resume().catch(() => {});
  return actx;
}

// ringer plays the ring of an incoming call (a rising three-note chime)
// and the ringback of an outgoing one (425 Hz, one second in four), made
// with WebAudio: no sound file.
const ringer = {
  timer: null,
  kind: '',
  start(kind) {
    this.stop();
    this.kind = kind;
    const once = () => (kind === 'in' ? chime() : ringback());
    try { once(); } catch { return; }
    this.timer = setInterval(() => { try { once(); } catch { /* no audio */ } }, kind === 'in' ? 2600 : 4000);
  },
  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.kind = '';
  },
};

function tone(ctx, freq, at, len, vol) {
  const o = ctx.createOscillator();
  const g = ctx.createGain();
  o.type = 'sine';
  o.frequency.value = freq;
  g.gain.setValueAtTime(0.0001, at);
  g.gain.exponentialRampToValueAtTime(vol, at + 0.02);
  g.gain.exponentialRampToValueAtTime(0.0001, at + len);
  o.connect(g).connect(ctx.destination);
  o.start(at);
  o.stop(at + len + 0.05);
}

function chime() {
  const ctx = audio();
  const t = ctx.currentTime + 0.02;
  [[659.25, 0], [830.61, 0.16], [987.77, 0.32], [659.25, 0.8], [830.61, 0.96], [987.77, 1.12]]
    .forEach(([f, d]) => tone(ctx, f, t + d, 0.45, 0.18));
}

function ringback() {
  const ctx = audio();
  const t = ctx.currentTime + 0.02;
  tone(ctx, 425, t, 1.0, 0.08);
}

// ---- the call screen ----

function hue(s) {
  let x = 0;
  for (const c of s || '') x = (x * 31 + c.charCodeAt(0)) % 360;
  return x;
}

function initial(name) {
  return (name || '?').trim().charAt(0).toUpperCase() || '?';
}

function buildStage(A) {
  A.status = h('span', { class: 'call-status' });
  A.grid = h('div', { class: 'call-grid' });
  A.people = h('ul', { class: 'call-people-list', 'aria-label': 'Participants' });
  A.peopleTitle = h('h2', { class: 'call-side-title' });
  A.lock = h('span', { class: 'call-e2ee', title: 'Signalling is end-to-end encrypted; media is DTLS-SRTP, checked against the signed fingerprint' }, icon('lock'), 'Encrypted');
  const btn = (name, ic, fn, cls = '') => h('button', { class: 'round-btn ' + cls, type: 'button', 'aria-label': name, title: name, 'aria-pressed': 'false', onclick: fn }, icon(ic));
  A.btnMute = btn('Mute microphone', 'mic', toggleMute);
  A.btnCam = btn('Turn camera off', 'video', toggleCamera);
  A.btnScreen = btn('Share screen', 'screen', toggleScreen);
  const hang = h('button', { class: 'round-btn hang', type: 'button', 'aria-label': 'Hang up', title: 'Hang up', onclick: () => hangUp(true) }, icon('hangup'));
  A.stage = h('section', { class: 'call-stage', role: 'region', 'aria-label': 'Call' },
    h('header', { class: 'call-top' },
      h('div', { class: 'call-title' }, h('strong', {}, app.roomName(A.room)), A.status),
      A.lock,
      A.btnMin = h('button', { class: 'icon-btn call-min', type: 'button', 'aria-label': 'Minimize call', title: 'Minimize call', 'aria-pressed': 'false', onclick: () => showStage(A.stage.classList.contains('mini')) }, icon('minimize'))),
    h('div', { class: 'call-body' }, A.grid, h('aside', { class: 'call-side' }, A.peopleTitle, A.people)),
    h('div', { class: 'call-controls', role: 'toolbar', 'aria-label': 'Call controls' }, A.btnMute, A.btnCam, A.btnScreen, hang));
  A.self = tile(A, null);
  document.body.append(A.stage);
  document.body.classList.add('in-call');
}

// tile is one participant's square of the grid: video, or their initial.
function tile(A, p) {
  const user = p ? p.user : app.me().user;
  const name = p ? nameIn(A, p.key, p.user) : app.nameOf(user);
  const video = h('video', { autoplay: true, playsinline: true, '.muted': !p, 'data-remote': p ? 'true' : null });
  if (!p) video.srcObject = new MediaStream(A.local.getVideoTracks());
  else video.srcObject = p.stream;
  const label = h('span', { class: 'tile-name' });
  const el = h('div', { class: 'tile' + (p ? '' : ' self'), 'data-key': p ? p.key : myKey() },
    video,
    h('div', { class: 'tile-avatar', 'aria-hidden': 'true' }, h('span', { class: 'avatar', style: `--h:${hue(user)}` }, initial(name))),
    label);
  video.play().catch(() => {});
  return { el, video, label };
}

function nameIn(A, key, user) {
  const m = A.members.get(key);
  return (m && m.name) || app.nameOf(user);
}

function renderStage() {
  const A = C.active;
  if (!A) return;
  const remotes = [...A.peers.values()];
  const n = remotes.length + 1;
  A.grid.dataset.n = String(Math.min(n, 9));
  // Self first in a group; in a 1:1 the self view floats over the other.
  const want = [...remotes.map((p) => p.tile.el), A.self.el];
  if (A.grid.childElementCount !== want.length || want.some((e, i) => A.grid.children[i] !== e)) A.grid.replaceChildren(...want);
  A.self.el.classList.toggle('pip', n === 2);
  // The self view shows what this device sends.
  const sent = sentVideo(A);
  const selfTracks = A.self.video.srcObject.getVideoTracks();
  if (sent && selfTracks[0] !== sent) A.self.video.srcObject = new MediaStream([sent]);
  A.self.el.classList.toggle('no-video', !sent || (!A.screen && A.camOff));
  A.self.el.classList.toggle('screen', !!A.screen);
  A.self.el.classList.toggle('muted', A.muted);
  setLabel(A.self.label, `${app.nameOf(app.me().user)} (you)`, A.muted);
  for (const p of remotes) {
    p.tile.el.classList.toggle('no-video', !p.videoOn);
    p.tile.el.classList.toggle('speaking', p.speaking);
    p.tile.el.classList.toggle('connecting', p.pc.connectionState !== 'connected');
    const st = A.states.get(p.key);
    setLabel(p.tile.label, nameIn(A, p.key, p.user), !!(st && st.muted));
    p.tile.el.classList.toggle('muted', !!(st && st.muted));
  }
  // Controls.
  A.btnMute.setAttribute('aria-pressed', String(A.muted));
  clear(A.btnMute).append(icon(A.muted ? 'micOff' : 'mic'));
  A.btnCam.setAttribute('aria-pressed', String(A.camOff));
  clear(A.btnCam).append(icon(A.camOff ? 'videoOff' : 'video'));
  A.btnScreen.setAttribute('aria-pressed', String(!!A.screen));
  // Status: calling, connecting, or the time since the first connection.
  let status;
  if (A.connectedAt) status = duration(Date.now() - A.connectedAt);
  else if (A.starter && A.members.size <= 1 && remotes.length === 0) status = 'Calling…';
  else status = 'Connecting…';
  if (A.status.textContent !== status) A.status.textContent = status;
  A.lock.classList.toggle('checked', remotes.length > 0 && remotes.every((p) => p.verified));
  renderPeople();
}

function setLabel(el, name, muted) {
  const key = (muted ? '1' : '0') + name;
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  clear(el);
  if (muted) el.append(icon('micOff'));
  el.append(name);
}

function renderPeople() {
  const A = C.active;
  if (!A) return;
  const rows = new Map();
  rows.set(myKey(), { user: app.me().user, name: `${app.nameOf(app.me().user)} (you)`, note: A.muted ? 'Muted' : '' });
  for (const [k, m] of A.members) {
    if (k === myKey() || A.gone.has(k)) continue;
    rows.set(k, { user: m.user, name: m.name || app.nameOf(m.user), note: 'Connecting…' });
  }
  for (const p of A.peers.values()) {
    const st = p.pc.connectionState;
    const ms = A.states.get(p.key);
    const what = [ms && ms.muted ? 'Muted' : '', ms && ms.videoOff ? 'Camera off' : ''].filter(Boolean);
    rows.set(p.key, { user: p.user, name: nameIn(A, p.key, p.user),
      note: [st === 'connected' ? (p.verified ? 'Connected · verified' : 'Connected') : st === 'failed' ? 'Connection lost' : 'Connecting…', ...what].join(' · ') });
  }
  const key = JSON.stringify([...rows]);
  if (key === A.peopleKey) return;
  A.peopleKey = key;
  A.peopleTitle.textContent = `In the call · ${rows.size}`;
  A.people.replaceChildren(...[...rows.values()].map((r) => h('li', { class: 'call-person' },
    h('span', { class: 'avatar', 'aria-hidden': 'true', style: `--h:${hue(r.user)}` }, initial(r.name)),
    h('span', { class: 'call-person-name' }, h('strong', {}, r.name), r.note ? h('span', { class: 'muted small' }, r.note) : null))));
}

// tick runs every second in a call: the clock, who speaks, whose video
// flows, the fingerprint check, and peers whose connection stays failed.
let ticking = false;
async function tick() {
  const A = C.active;
  if (!A || ticking) return;
  ticking = true;
  try {
    await tickPeers(A);
  } finally {
    ticking = false;
  }
  if (C.active === A) renderStage();
}

async function tickPeers(A) {
  for (const p of [...A.peers.values()]) {
    if (p.failedSince && Date.now() - p.failedSince > FAILED_MS) {
      dropPeer(p, 'lost');
      retry(A, p);
      continue;
    }
    if (!p.connectedOnce && p.pc.connectionState !== 'connected' && Date.now() - p.created > FAILED_MS) {
      dropPeer(p, 'unreachable');
      retry(A, p);
      continue;
    }
    if (p.pc.connectionState !== 'connected') continue;
    let stats;
    try { stats = await p.pc.getStats(); } catch { continue; }
    let frames = 0;
    let level = 0;
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    for (const s of byId.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') level = Math.max(level, s.audioLevel || 0);
      if (s.type === 'transport' && s.remoteCertificateId && !p.verified && s.dtlsState === 'connected') {
        const cert = byId.get(s.remoteCertificateId);
        if (cert) {
          if (!fingerprintOK(p.remoteSDP, cert)) {
            app.toast(`The connection to ${app.nameOf(p.user)} was dropped: its certificate does not match the signed offer`);
            dropPeer(p, 'fingerprint');
            break;
          }
          p.verified = true;
        }
      }
    }
    // No frames since the last look: the camera is off (or it is a voice
    // call), show the initial.
    p.videoOn = frames > p.frames;
    p.frames = frames;
    p.speaking = level > 0.03;
  }
}

// retry opens a new session to a participant whose session was dropped as
// lost or unreachable while it is still in the call: the lower
// "user/device" offers (once a participant has left, its leave event or
// hang-up removes it from the call for good).
function retry(A, p) {
  setTimeout(() => {
    if (C.active === A && !A.gone.has(p.key) && !A.peers.has(p.key) && myKey() < p.key) offerTo(p.user, p.device);
  }, 1000);
}

// fingerprintOK checks the remote DTLS certificate against the fingerprint
// the signed SDP carries.
function fingerprintOK(sdp, cert) {
  const alg = (cert.fingerprintAlgorithm || '').toLowerCase();
  const fp = (cert.fingerprint || '').toUpperCase();
  const want = [...(sdp || '').matchAll(/^a=fingerprint:(\S+) (\S+)/gm)].map((m) => [m[1].toLowerCase(), m[2].toUpperCase()]);
  return want.some(([a, f]) => a === alg && f === fp);
}

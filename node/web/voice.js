// Voice messages (docs/web.md): "Record voice message" records with
// MediaRecorder (Opus in WebM or Ogg); pressing it again measures the
// recording (duration and a waveform of 64 loudness buckets, as the node
// computes for WAV in media/audio.go) and sends it as a voice message. In
// the timeline a voice message is a player: play/pause, its waveform
// (a slider to seek) and its duration.

import { h, clear } from './dom.js';
import { icon } from './icons.js';
import { uploadVoice } from './api.js';
import { kit } from './kit.js';

const BUCKETS = 64;
const MAX_MS = 15 * 60e3; // a voice message stops itself after 15 minutes

let rec = null; // the recording under way: {mr, stream, chunks, t0, timer, cancelled, room, btn, bar}

// voiceButton is the composer's record control; bar is where the
// recording's state shows (a row above the composer).
export function voiceButton(bar) {
  const btn = h('button', { class: 'icon-btn voice', type: 'button', 'aria-label': 'Record voice message',
    title: 'Record voice message', 'aria-pressed': 'false' }, icon('mic'));
  btn.addEventListener('click', () => (rec && rec.btn === btn ? stop(false) : start(btn, bar)));
  return btn;
}

// voiceBar is the row the recording shows in (hidden when idle).
export function voiceBar() {
  return h('div', { class: 'voice-bar', hidden: true });
}

// Another room opened (its composer replaces this one): the recording is dropped.
window.addEventListener('hashchange', () => {
  if (rec && location.hash !== '#room=' + rec.room) {
    stop(true);
    kit.toast('Voice message discarded: the recording stopped when you left the room.');
  }
});

function pickType() {
  for (const t of ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm', 'audio/ogg']) {
    if (window.MediaRecorder && MediaRecorder.isTypeSupported(t)) return t;
  }
  return '';
}

async function start(btn, bar) {
  if (rec) stop(true);
  if (!navigator.mediaDevices || !window.MediaRecorder) return kit.toast('This browser cannot record audio.');
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    return kit.toast(e.name === 'NotAllowedError' ? 'Parley may not use the microphone: allow it in the browser.' : `Microphone: ${e.message}`);
  }
  const type = pickType();
  const mr = new MediaRecorder(stream, type ? { mimeType: type } : {});
  const r = { mr, stream, chunks: [], t0: Date.now(), cancelled: false, room: kit.S.current, btn, bar };
  rec = r;
  mr.ondataavailable = (e) => { if (e.data && e.data.size) r.chunks.push(e.data); };
  mr.onstop = () => finish(r);
  mr.start(250);
  btn.setAttribute('aria-pressed', 'true');
  btn.classList.add('recording');
  btn.title = 'Stop and send';
  const time = h('span', { class: 'rec-time' }, '0:00');
  clear(bar).append(h('span', { class: 'rec-dot', 'aria-hidden': 'true' }), h('span', {}, 'Recording '), time,
    h('span', { class: 'muted small' }, ' · press the microphone again to send'),
    h('button', { class: 'icon-btn small', type: 'button', 'aria-label': 'Cancel recording', onclick: () => stop(true) }, icon('x')));
  bar.hidden = false;
  r.timer = setInterval(() => {
    const ms = Date.now() - r.t0;
    time.textContent = clock(ms);
    if (ms > MAX_MS) stop(false);
  }, 250);
}

function stop(cancel) {
  const r = rec;
  if (!r) return;
  rec = null;
  r.cancelled = cancel;
  clearInterval(r.timer);
  r.btn.setAttribute('aria-pressed', 'false');
  r.btn.classList.remove('recording');
  r.btn.title = 'Record voice message';
  r.bar.hidden = true;
  clear(r.bar);
  if (r.mr.state !== 'inactive') r.mr.stop();
  else finish(r);
}

async function finish(r) {
  r.stream.getTracks().forEach((t) => t.stop());
  if (r.cancelled || r.done) return;
  r.done = true;
  const type = (r.mr.mimeType || 'audio/webm').split(';')[0];
  const blob = new Blob(r.chunks, { type });
  if (blob.size === 0) return kit.toast('Nothing was recorded.');
  let wave = null;
  let ms = Date.now() - r.t0;
  try {
    [wave, ms] = await measure(blob, ms);
  } catch { /* sent without a waveform */ }
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const name = `voice-${stamp}.${type.includes('ogg') ? 'ogg' : 'webm'}`;
  try {
    await uploadVoice(r.room, blob, name, wave, ms);
  } catch (e) { kit.toast(`Voice message: ${e.message}`); }
}

// measure decodes the recording: its waveform (RMS of 64 equal slices,
// the loudest 255) and duration in ms.
async function measure(blob, fallbackMS) {
  const ac = new (window.AudioContext || window.webkitAudioContext)();
  try {
    const buf = await ac.decodeAudioData(await blob.arrayBuffer());
    const data = buf.getChannelData(0);
    const rms = [];
    for (let b = 0; b < BUCKETS; b++) {
      const f0 = Math.floor(data.length * b / BUCKETS);
      const f1 = Math.max(f0 + 1, Math.floor(data.length * (b + 1) / BUCKETS));
      const step = Math.max(1, Math.floor((f1 - f0) / 4096));
      let sum = 0;
      let n = 0;
      for (let i = f0; i < f1 && i < data.length; i += step) { sum += data[i] * data[i]; n++; }
      rms.push(n ? Math.sqrt(sum / n) : 0);
    }
    const top = Math.max(...rms);
    const wave = rms.map((v) => (top > 0 ? Math.round(v / top * 255) : 0));
    return [wave, Math.round(buf.duration * 1000) || fallbackMS];
  } finally {
    ac.close();
  }
}

function clock(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function decodeWave(w) {
  if (!w) return [];
  if (Array.isArray(w)) return w;
  try {
    const s = atob(w);
    return [...s].map((c) => c.charCodeAt(0));
  } catch { return []; }
}

// voicePlayer shows a voice message (or audio with a waveform): a
// play/pause button, the waveform as a seek slider, the time.
export function voicePlayer(m, src) {
  const audio = h('audio', { preload: 'none', src });
  let wave = decodeWave(m.waveform);
  if (wave.length === 0) wave = new Array(BUCKETS).fill(40); // no waveform known: a flat line
  const bars = wave.map((v) => {
    const b = h('span', { class: 'bar' });
    b.style.height = `${Math.max(10, Math.round(v / 255 * 100))}%`;
    return b;
  });
  const dur = () => (isFinite(audio.duration) && audio.duration > 0 ? audio.duration * 1000 : m.duration_ms || 0);
  const time = h('span', { class: 'voice-time' }, clock(m.duration_ms || 0));
  const label = m.voice ? 'Voice message' : (m.name || 'Audio');
  const slider = h('div', { class: 'wave', role: 'slider', tabindex: '0', 'aria-label': `Seek ${label.toLowerCase()}`,
    'aria-valuemin': '0', 'aria-valuemax': String(Math.round((m.duration_ms || 0) / 1000)), 'aria-valuenow': '0',
    'aria-valuetext': clock(0) }, bars);
  const play = h('button', { class: 'play', type: 'button', 'aria-label': `Play ${label.toLowerCase()}` }, icon('play'));
  const paint = () => {
    const d = dur();
    const at = audio.currentTime * 1000;
    const frac = d ? Math.min(1, at / d) : 0;
    const lit = Math.round(frac * bars.length);
    bars.forEach((b, i) => b.classList.toggle('on', i < lit));
    time.textContent = audio.paused && at === 0 ? clock(d) : clock(at);
    slider.setAttribute('aria-valuenow', String(Math.round(at / 1000)));
    slider.setAttribute('aria-valuemax', String(Math.round(d / 1000)));
    slider.setAttribute('aria-valuetext', `${clock(at)} of ${clock(d)}`);
  };
  const setIcon = () => {
    clear(play).append(icon(audio.paused ? 'play' : 'pause'));
    play.setAttribute('aria-label', `${audio.paused ? 'Play' : 'Pause'} ${label.toLowerCase()}`);
  };
  play.addEventListener('click', () => (audio.paused ? audio.play().catch((e) => kit.toast(e.message)) : audio.pause()));
  audio.addEventListener('play', setIcon);
  audio.addEventListener('pause', setIcon);
  audio.addEventListener('ended', () => { audio.currentTime = 0; setIcon(); paint(); });
  audio.addEventListener('timeupdate', paint);
  audio.addEventListener('loadedmetadata', paint);
  const seek = (frac) => {
    const d = dur();
    if (!d) return;
    const go = () => { audio.currentTime = Math.max(0, Math.min(1, frac)) * d / 1000; paint(); };
    if (audio.readyState === 0) { audio.addEventListener('loadedmetadata', go, { once: true }); audio.load(); } else go();
  };
  slider.addEventListener('click', (e) => {
    const r = slider.getBoundingClientRect();
    seek((e.clientX - r.left) / r.width);
  });
  slider.addEventListener('keydown', (e) => {
    const d = dur() || 1;
    const step = 5000 / d;
    const now = audio.currentTime * 1000 / d;
    if (e.key === 'ArrowRight') { e.preventDefault(); seek(now + step); }
    if (e.key === 'ArrowLeft') { e.preventDefault(); seek(now - step); }
    if (e.key === ' ' || e.key === 'Enter') { e.preventDefault(); play.click(); }
  });
  return h('div', { class: 'voice-msg' + (m.voice ? '' : ' audio'), role: 'group', 'aria-label': label }, play, slider, time, audio);
}

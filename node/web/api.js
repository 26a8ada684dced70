// The node's HTTP API, called with the session cookie (docs/web.md).

export class APIError extends Error {
  constructor(msg, status, kind) { super(msg); this.status = status; this.kind = kind; }
}

async function answer(r) {
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) throw new APIError((body && body.error) || `HTTP ${r.status}`, r.status, body && body.kind);
  return body;
}

// call runs POST /v1/<method> with a JSON body.
export async function call(method, req = {}) {
  const r = await fetch(`/v1/${method}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(req),
  });
  return answer(r);
}

// login trades the one-time token for the session cookie.
export async function login(token) {
  const r = await fetch('/web/session', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }),
  });
  return answer(r);
}

// upload sends a file to a room.
export async function upload(room, file) {
  const q = new URLSearchParams({ room, name: file.name || 'file' });
  const r = await fetch(`/web/upload?${q}`, { method: 'POST', body: file });
  return answer(r);
}

export const fileURL = (room, event, name, download) =>
  `/web/file?${new URLSearchParams({ room, event, name: name || 'file', ...(download ? { download: '1' } : {}) })}`;
export const blobURL = (cid, key) => `/web/blob?${new URLSearchParams({ cid, key })}`;

// events opens the live stream; onReady runs on every (re)connect, once the
// server streams everything accepted after it (the client re-reads what it
// shows then), onItem for each later line. The browser reconnects by
// itself after a network error; a stream it gives up on (an answer that is
// not a stream, e.g. while the daemon starts) is opened again, after 1 s,
// then up to 30 s.
export function events(onItem, onReady, onDown) {
  let wait = 1000;
  const open = () => {
    const es = new EventSource('/web/events');
    es.onmessage = (m) => {
      let it;
      try { it = JSON.parse(m.data); } catch { return; }
      if (it.kind === 'ready') {
        wait = 1000;
        onReady();
      } else onItem(it);
    };
    es.onerror = () => {
      onDown();
      if (es.readyState === EventSource.CLOSED) {
        setTimeout(open, wait);
        wait = Math.min(wait * 2, 30000);
      }
    };
  };
  open();
}

// deviceLink mints a one-time device-link code with its QR code:
// {code, expires_ms, qr} (qr: an SVG data: URL).
export async function deviceLink() {
  const r = await fetch('/web/device-link', { method: 'POST' });
  return answer(r);
}

// uploadVoice sends a recorded voice message with the waveform (64
// loudness buckets, 0-255) and duration the browser measured.
export async function uploadVoice(room, blob, name, waveform, durationMS) {
  const q = new URLSearchParams({ room, name, voice: '1' });
  if (waveform && waveform.length) {
    q.set('waveform', btoa(String.fromCharCode(...waveform)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''));
  }
  if (durationMS) q.set('duration_ms', String(Math.round(durationMS)));
  const r = await fetch(`/web/upload?${q}`, { method: 'POST', body: blob });
  return answer(r);
}

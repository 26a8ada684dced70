// Threads: replies posted into a thread (a message's `thread` names its
// root) are not listed in the room's timeline; the root shows how many
// there are, and the thread opens in the side panel with its own composer
// (`Reply in thread`).

import { h } from './dom.js';
import { icon } from './icons.js';
import { call } from './api.js';
import { openPanel } from './panel.js';

let app;
const replies = new Map(); // root ID -> Set of reply IDs seen
let open = null;           // {room, root, log, events, byId}

export function initThreads(a) { app = a; }

const isReply = (ev) => ev.type === 'message' && ev.thread && ev.thread !== ev.id;

// inThread notes a thread reply (for its root's count) and says whether
// ev is one.
export function inThread(ev) {
  if (!isReply(ev)) return false;
  let s = replies.get(ev.thread);
  if (!s) replies.set(ev.thread, (s = new Set()));
  if (ev.redacted) s.delete(ev.id);
  else s.add(ev.id);
  return true;
}

function count(root) {
  const s = replies.get(root);
  return s ? s.size : 0;
}

// threadSummary is the "N replies" button under a thread's root, or null.
export function threadSummary(ev) {
  const n = count(ev.id);
  if (!n) return null;
  return h('button', { class: 'thread-summary', type: 'button', onclick: () => openThread(ev) },
    icon('thread'), `${n} ${n === 1 ? 'reply' : 'replies'}`);
}

// threadEvent takes a live thread reply (new, edited or reacted to).
export function threadEvent(room, ev) {
  if (!isReply(ev)) return;
  const before = count(ev.thread);
  inThread(ev);
  if (room === app.S.current && count(ev.thread) !== before) app.refreshEvent(ev.thread);
  if (open && open.room === room && open.root === ev.thread) put(ev);
}

// threadRedacted marks a deleted thread reply.
export function threadRedacted(room, id) {
  for (const [root, s] of replies) {
    if (s.delete(id) && room === app.S.current) app.refreshEvent(root);
  }
  if (open && open.room === room && open.byId.has(id)) {
    put({ ...open.byId.get(id), redacted: true, body: '', html: '', formatted: '', media: null, reactions: null });
  }
}

// openThread shows the thread whose root is the message root.
export async function openThread(root) {
  const room = app.S.current;
  const p = openPanel('thread', 'Thread', () => { open = null; });
  const log = h('div', { class: 'thread-log', role: 'log', 'aria-label': 'Thread' });
  const input = h('textarea', { class: 'input', 'aria-label': 'Reply in thread', placeholder: 'Reply in thread…', rows: 1 });
  const send = async () => {
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    try {
      await call('send', { room, text, thread: root.id, markdown: app.looksMarkdown(text) });
    } catch (e) {
      input.value = text;
      app.toast(e.message);
    }
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  const form = h('form', { class: 'composer thread-composer', onsubmit: (e) => { e.preventDefault(); send(); } },
    h('div', { class: 'composer-row' }, input,
      h('button', { class: 'icon-btn send', type: 'submit', 'aria-label': 'Send reply', title: 'Send' }, icon('send'))));
  p.body.append(log, form);
  const me = { room, root: root.id, log, events: [], byId: new Map() };
  open = me;
  input.focus();
  let res;
  try {
    res = await call('history', { room, thread: root.id });
  } catch (e) {
    log.append(h('p', { class: 'error' }, e.message));
    return;
  }
  if (open !== me) return;
  Object.assign(app.S.names, res.names || {});
  for (const ev of res.events || []) put(ev);
}

// put shows a thread entry, replacing the one with its ID.
function put(ev) {
  const view = { ...ev, reply_to: ev.reply_to === open.root ? '' : ev.reply_to };
  const old = open.byId.get(ev.id);
  const i = old ? open.events.indexOf(old) : open.events.length;
  const el = app.renderEvent(view, open.events[i - 1]);
  for (const x of el.querySelectorAll('.thread-summary, [aria-label="Thread"]')) x.remove();
  open.events[i] = ev;
  open.byId.set(ev.id, ev);
  if (old) {
    const at = [...open.log.children].find((c) => c.dataset.id === ev.id);
    if (at) at.replaceWith(el);
    return;
  }
  open.log.append(el);
  if (ev.id === open.root) open.log.append(h('div', { class: 'thread-sep muted small', role: 'separator' }, 'Replies'));
  open.log.scrollTop = open.log.scrollHeight;
}

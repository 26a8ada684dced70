// Search: a search box in the room's header; Enter searches the open room
// (the node's `search` method) and lists the hits in the side panel; a hit
// jumps to its message (paging back as far as needed), or opens its thread.

import { h } from './dom.js';
import { icon } from './icons.js';
import { call } from './api.js';
import { openPanel } from './panel.js';
import { openThread } from './threads.js';

let app;

export function initSearch(a) { app = a; }

export function searchBox() {
  const input = h('input', { type: 'search', class: 'search-input', 'aria-label': 'Search messages', placeholder: 'Search', autocomplete: 'off', enterkeyhint: 'search' });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      if (input.value.trim()) run(input.value.trim());
    }
  });
  return h('div', { class: 'search-box', role: 'search' }, icon('search'), input);
}

async function run(query) {
  const room = app.S.current;
  const p = openPanel('search', 'Search');
  const status = h('p', { class: 'muted small search-status', role: 'status' }, 'Searching…');
  p.body.append(status);
  let res;
  try {
    res = await call('search', { room, query, limit: 50 });
  } catch (e) {
    status.textContent = e.message;
    return;
  }
  Object.assign(app.S.names, res.names || {});
  const hits = res.hits || [];
  status.textContent = hits.length === 0 ? `No messages found for “${query}”.`
    : `${hits.length}${res.more ? '+' : ''} ${hits.length === 1 ? 'message' : 'messages'} found`;
  const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
  const list = h('ul', { class: 'results', 'aria-label': 'Search results' });
  for (const hit of hits) {
    const ev = hit.event;
    list.append(h('li', { class: 'result' },
      h('button', { class: 'result-btn', type: 'button', onclick: () => go(room, ev) },
        app.avatar(ev.sender, app.nameOf(ev.sender)),
        h('span', { class: 'result-main' },
          h('span', { class: 'result-head' }, h('strong', {}, app.nameOf(ev.sender)), ' ',
            h('time', { class: 'muted small', datetime: new Date(ev.ts).toISOString() }, app.fmtFull.format(ev.ts))),
          h('span', { class: 'result-text' }, marked(ev.body || '', terms))))));
  }
  p.body.append(list);
}

// marked is text with each search term in a <mark>, built as nodes.
function marked(text, terms) {
  const low = text.toLowerCase();
  const out = [];
  let i = 0;
  while (i < text.length) {
    let at = -1;
    let len = 0;
    for (const t of terms) {
      const j = low.indexOf(t, i);
      if (j >= 0 && (at < 0 || j < at)) { at = j; len = t.length; }
    }
    if (at < 0) break;
    out.push(text.slice(i, at), h('mark', {}, text.slice(at, at + len)));
    i = at + len;
  }
  out.push(text.slice(i));
  return out;
}

function go(room, ev) {
  if (room !== app.S.current) return;
  if (ev.thread && ev.thread !== ev.id) {
    openThread({ id: ev.thread });
    return;
  }
  app.reveal(ev.id);
}

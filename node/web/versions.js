// Edit versions: an edited message is marked "(edited)"; the mark opens
// the original and every edit (history --versions).

import { h } from './dom.js';
import { call } from './api.js';

let app;

export function initVersions(a) { app = a; }

// editedMark is the "(edited)" button of an edited message.
export function editedMark(ev) {
  return h('button', { class: 'edited muted', type: 'button', 'aria-label': 'Edited', title: 'Show earlier versions',
    onclick: () => showVersions(ev) }, '(edited)');
}

async function showVersions(ev) {
  const room = app.S.current;
  const d = app.dialog('Edit history');
  const list = h('ol', { class: 'versions', 'aria-label': 'Versions' });
  d.body.append(list);
  d.open();
  let res;
  try {
    res = await call('history', { room, versions: ev.id });
  } catch (e) {
    list.replaceWith(h('p', { class: 'error' }, e.message));
    return;
  }
  const vs = res.events || [];
  vs.forEach((v, i) => {
    const label = i === vs.length - 1 ? 'Current' : i === 0 ? 'Original' : `Edit ${i}`;
    list.append(h('li', { class: 'version' + (i === vs.length - 1 ? ' current' : '') },
      h('div', { class: 'version-head' }, h('strong', {}, label), ' ',
        h('time', { class: 'muted small', datetime: new Date(v.ts).toISOString() }, app.fmtFull.format(v.ts))),
      h('div', { class: 'text' }, v.body || '')));
  });
}

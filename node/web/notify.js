// Notifications (docs/web.md): a browser notification for each new message
// that mentions this user or arrives in a direct-message room, while the
// tab is in the background, when the user switched them on (Settings) and
// the browser permits; plus the Settings dialog (notifications, who may
// send this user invites).

import { h } from './dom.js';
import { icon } from './icons.js';
import { call } from './api.js';
import { kit } from './kit.js';

const KEY = 'parley.notifications';
const told = new Set(); // event IDs already notified (an edit arrives with the same ID)

export function enabled() {
  return localStorage.getItem(KEY) === 'on' && 'Notification' in window && Notification.permission === 'granted';
}

function background() {
  return document.hidden || !document.hasFocus();
}

// notifyItem looks at one item of the live stream.
export function notifyItem(it) {
  const ev = it.event;
  if (it.kind !== 'event' || !ev || ev.type !== 'message' || ev.redacted || !kit.S.me || ev.sender === kit.S.me.user) return;
  const r = kit.S.rooms.get(it.room);
  const dm = !!(r && r.dm);
  if (!it.mentions_me && !dm) return;
  if (told.has(ev.id) || !background() || !enabled()) return;
  if (Date.now() - (ev.ts || 0) > 5 * 60e3) return; // old news synced late
  if (told.size > 5000) told.clear();
  told.add(ev.id);
  const who = it.name || kit.nameOf(ev.sender);
  const title = dm ? who : `${who} in ${r ? r.name : 'a room'}`;
  const body = ev.media ? (ev.media.voice ? 'Voice message' : ev.media.name || 'A file') : (ev.body || '').slice(0, 200);
  try {
    const n = new Notification(title, { body, tag: ev.id, icon: '/favicon.svg' });
    n.onclick = () => {
      window.focus();
      location.hash = 'room=' + it.room;
      n.close();
    };
  } catch { /* some browsers only notify from a service worker */ }
}

// settingsButton is the Settings control of the sidebar's header.
export function settingsButton() {
  return h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Settings', title: 'Settings', onclick: settingsDialog }, icon('sliders'));
}

async function settingsDialog() {
  const d = kit.dialog('Settings', 'dialog', 'settings');
  const note = h('p', { class: 'muted small', 'aria-live': 'polite' });
  const sw = h('input', { type: 'checkbox', role: 'switch', id: 'set-notify' });
  sw.checked = localStorage.getItem(KEY) === 'on';
  const explain = () => {
    if (!('Notification' in window)) note.textContent = 'This browser cannot show notifications.';
    else if (Notification.permission === 'denied') note.textContent = 'The browser blocks notifications for this page: allow them in its site settings.';
    else if (sw.checked && Notification.permission === 'granted') note.textContent = 'You are notified of mentions and direct messages while Parley is in the background.';
    else note.textContent = 'Mentions and direct messages, while Parley is in the background.';
  };
  sw.addEventListener('change', async () => {
    if (sw.checked && 'Notification' in window && Notification.permission !== 'granted') {
      const p = await Notification.requestPermission();
      if (p !== 'granted') sw.checked = false;
    }
    localStorage.setItem(KEY, sw.checked ? 'on' : 'off');
    explain();
  });
  explain();
  const policy = h('select', { id: 'set-policy' },
    [['anyone', 'Anyone'], ['contacts', 'People I share a room with'], ['nobody', 'Nobody']].map(([v, t]) => h('option', { value: v }, t)));
  try {
    policy.value = (await call('invites/policy', {})).policy || 'anyone';
  } catch { /* keep the default shown */ }
  policy.addEventListener('change', async () => {
    try {
      await call('invites/policy', { policy: policy.value });
      kit.toast('Saved');
    } catch (e) { kit.toast(e.message); }
  });
  d.body.append(
    h('h3', {}, 'Notifications'),
    h('div', { class: 'field check switch' }, sw, h('label', { for: 'set-notify' }, 'Desktop notifications')), note,
    h('h3', {}, 'Privacy'),
    h('div', { class: 'field' }, h('label', { for: 'set-policy' }, 'Who can invite me'), policy),
    h('p', { class: 'muted small' }, 'Invites from anyone else are refused.'));
  d.open();
}

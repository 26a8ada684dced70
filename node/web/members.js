// The member list: a side panel of the room's members with their avatars,
// roles and presence; for another member, "Message" (open or start the
// direct-message room) and "Block" / "Unblock".

import { h } from './dom.js';
import { icon } from './icons.js';
import { call } from './api.js';
import { openPanel, panelOf } from './panel.js';
import { presenceDot } from './people.js';

let app;

export function initMembers(a) { app = a; }

export function membersButton() {
  return h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Members', title: 'Members', onclick: showMembers }, icon('users'));
}

async function showMembers() {
  const room = app.S.current;
  const p = openPanel('members', 'Members');
  let info;
  let blocked;
  try {
    [info, blocked] = await Promise.all([call('room/info', { room }), call('blocked')]);
  } catch (e) {
    p.body.append(h('p', { class: 'error' }, e.message));
    return;
  }
  if (panelOf('members') !== p) return;
  const bl = new Set(blocked.blocked || []);
  const members = (info.members || []).filter((m) => m.membership === 'join' || m.membership === 'invite');
  const order = { admin: 0, moderator: 1, member: 2 };
  members.sort((a, b) => (a.membership === 'invite') - (b.membership === 'invite') || (order[a.role] ?? 3) - (order[b.role] ?? 3) ||
    (a.display_name || a.user).localeCompare(b.display_name || b.user));
  const list = h('ul', { class: 'member-list', 'aria-label': 'Members' });
  for (const m of members) {
    const name = m.display_name || app.short(m.user);
    if (m.display_name) app.S.names[m.user] = m.display_name;
    const me = m.user === app.S.me.user;
    const blockBtn = me ? null : h('button', { class: 'btn small', type: 'button' }, bl.has(m.user) ? 'Unblock' : 'Block');
    if (blockBtn) blockBtn.addEventListener('click', () => toggleBlock(m.user, name, blockBtn));
    list.append(h('li', { class: 'member-row' },
      h('span', { class: 'avatar-wrap' }, app.avatar(m.user, name), presenceDot(m.user)),
      h('span', { class: 'member-name' }, h('strong', {}, name + (me ? ' (you)' : '')),
        h('span', { class: 'muted small' }, m.membership === 'invite' ? 'invited' : m.role + (m.verified ? ' · verified' : ''))),
      me ? null : h('span', { class: 'member-actions' },
        h('button', { class: 'btn small', type: 'button', onclick: () => message(m.user) }, icon('chat'), 'Message'),
        blockBtn)));
  }
  p.body.append(list);
}

async function message(user) {
  try {
    const r = await call('dm', { user });
    await app.refreshRooms();
    location.hash = 'room=' + r.room;
  } catch (e) { app.toast(e.message); }
}

async function toggleBlock(user, name, btn) {
  const block = btn.textContent === 'Block';
  try {
    await call(block ? 'block' : 'unblock', { user });
  } catch (e) { return app.toast(e.message); }
  btn.textContent = block ? 'Unblock' : 'Block';
  app.toast(block ? `${name} is blocked: you no longer see their messages or invites` : `${name} is unblocked`);
  app.reload();
}

// Verification (docs/web.md): the safety number and the seven emoji of
// this user and another (API verify; both sides compute the same from the
// two master keys, node/devices.go), "They match" records the user as
// verified; the room's security warnings (a verified name under another
// key, a device under two keys) are shown above the timeline.

import { h, clear } from './dom.js';
import { icon } from './icons.js';
import { call } from './api.js';
import { kit } from './kit.js';

// verifyButton is the Verify control of a member row (not for oneself);
// a verified member gets a badge beside it.
export function verifyButton(m, done) {
  if (m.user === kit.S.me.user) return null;
  return [
    m.verified ? h('span', { class: 'verified', title: 'Verified' }, icon('shield'), h('span', { class: 'visually-hidden' }, 'verified')) : null,
    h('button', { class: 'btn small', type: 'button', onclick: () => verifyDialog(m.user, done) }, 'Verify'),
  ];
}

export async function verifyDialog(user, done) {
  const name = kit.nameOf(user);
  let res;
  try {
    res = await call('verify', { user });
  } catch (e) { return kit.toast(e.message); }
  const d = kit.dialog(`Verify ${name}`, 'dialog', 'verify');
  const emoji = h('ol', { class: 'sas', 'aria-label': 'Emoji' }, (res.emoji || []).map((e, i) =>
    h('li', {}, h('span', { class: 'sas-emoji', 'aria-hidden': 'true' }, e), h('span', { class: 'sas-name' }, (res.emoji_names || [])[i] || ''))));
  const number = h('p', { class: 'safety-number' },
    (res.safety_number || '').split(/\s+/).map((g) => h('span', {}, g)));
  d.body.append(
    res.verified
      ? h('p', { class: 'ok-line' }, icon('shield'), `You verified ${name}.`)
      : h('p', {}, `Compare these with ${name}, in person or on a call you trust. If both screens show the same, ${name} is who they say, and nobody reads along.`),
    h('h3', {}, 'Emoji'), emoji,
    h('h3', {}, 'Safety number'), number,
    h('p', { class: 'muted small' }, 'User ID ', h('code', { class: 'id' }, user)));
  if (res.verified) {
    d.actions.append(h('button', { class: 'btn', type: 'button', onclick: () => d.close() }, 'Done'));
  } else {
    d.actions.append(
      h('button', { class: 'btn', type: 'button', onclick: () => {
        d.close();
        kit.toast(`Not verified. If ${name} is who you think, their screen shows another number: ask them again.`);
      } }, 'They don’t match'),
      h('button', { class: 'btn primary', type: 'button', onclick: async () => {
        try {
          await call('verify', { user, confirm: true });
          d.close();
          kit.toast(`${name} is verified`);
          if (done) done();
        } catch (e) { kit.toast(e.message); }
      } }, 'They match'));
  }
  d.open();
}

// showWarnings puts the room's security warnings above its timeline.
export function showWarnings(log, warnings) {
  if (!log) return;
  let box = log.parentElement && log.parentElement.querySelector('.warnings');
  const list = warnings || [];
  if (!box) {
    if (list.length === 0) return;
    box = h('div', { class: 'warnings', role: 'alert' });
    log.before(box);
  }
  const key = JSON.stringify(list.map((w) => w.message));
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  clear(box);
  box.hidden = list.length === 0;
  for (const w of list) {
    box.append(h('div', { class: 'warning' }, icon('warn'),
      h('span', {}, w.kind === 'master_key_changed'
        ? `“${kit.nameOf(w.user)}” (${kit.short(w.user)}) uses the name of a person you verified, with a different key: it is not the person you verified.`
        : `A device of “${kit.nameOf(w.user)}” (${kit.short(w.user)}) is also known under another user’s key: one of them is not who it was.`),
      h('button', { class: 'btn small', type: 'button', onclick: () => verifyDialog(w.user) }, 'Compare again')));
  }
}

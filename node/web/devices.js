// Devices (docs/web.md): this user's devices with Revoke, and "Link a new
// device": a one-time code from the node (device/link, protocol in
// node/link.go) shown as text and as a QR code the daemon draws
// (POST /web/device-link). The new device runs `parley device join CODE`.

import { h, clear } from './dom.js';
import { icon } from './icons.js';
import { call, deviceLink } from './api.js';
import { kit } from './kit.js';

// groups writes an ID in groups of four for reading aloud and comparing.
export function groups(id, n = 4) {
  return (id || '').match(new RegExp(`.{1,${n}}`, 'g')).join(' ');
}

export async function devicesDialog() {
  const d = kit.dialog('Devices', 'dialog', 'devices');
  const list = h('ul', { class: 'members device-list', 'aria-label': 'Your devices' });
  const linkBox = h('div', { class: 'link-box' });
  const linkBtn = h('button', { class: 'btn primary', type: 'button', onclick: () => linkDevice(linkBox, linkBtn) },
    icon('plus'), 'Link a new device');
  d.body.append(
    h('p', { class: 'muted small' }, 'Every device of yours reads your encrypted rooms. Revoke one you lost or no longer use: it cannot read what follows.'),
    list, h('div', { class: 'link-row' }, linkBtn), linkBox);
  d.el.addEventListener('close', () => clearInterval(linkBox.timer));
  await fill(list, d);
  d.open();
}

async function fill(list, d) {
  let res;
  try {
    res = await call('device/list', {});
  } catch (e) {
    clear(list).append(h('li', { class: 'error' }, e.message));
    return;
  }
  clear(list);
  for (const dev of res.devices || []) {
    const name = dev.current ? 'This device' : dev.name || 'Linked device';
    list.append(h('li', { class: 'member device' },
      h('span', { class: 'device-icon', 'aria-hidden': 'true' }, icon('devices')),
      h('div', { class: 'member-name' },
        h('strong', {}, name, dev.current ? h('span', { class: 'tag current' }, 'current') : null),
        h('code', { class: 'fingerprint', title: dev.device }, groups(dev.device.slice(0, 24)) + ' …'),
        h('span', { class: 'muted small' }, roomsText(dev))),
      dev.current ? null : h('button', { class: 'btn small danger', type: 'button', 'aria-label': 'Revoke',
        onclick: () => confirmRevoke(dev, list, d) }, 'Revoke')));
  }
}

function roomsText(dev) {
  const n = (dev.rooms || []).length;
  return n === 0 ? 'in no encrypted room yet' : `in ${n} encrypted ${n === 1 ? 'room' : 'rooms'}`;
}

function confirmRevoke(dev, list, parent) {
  const d = kit.dialog('Revoke this device?', 'alertdialog');
  d.body.append(h('p', {}, 'It is removed from every encrypted room and cannot read new messages. To use it again, link it anew.'),
    h('p', {}, h('code', { class: 'fingerprint' }, groups(dev.device))));
  d.actions.append(
    h('button', { class: 'btn', type: 'button', onclick: () => d.close() }, 'Cancel'),
    h('button', { class: 'btn danger', type: 'button', onclick: async () => {
      try {
        await call('device/revoke', { device: dev.device });
        d.close();
        kit.toast('Device revoked');
        fill(list, parent);
      } catch (e) { kit.toast(e.message); }
    } }, 'Revoke'));
  d.open();
}

async function linkDevice(box, btn) {
  clearInterval(box.timer);
  btn.disabled = true;
  let res;
  try {
    res = await deviceLink();
  } catch (e) {
    btn.disabled = false;
    clear(box).append(h('p', { class: 'error', role: 'alert' }, e.message));
    return;
  }
  btn.disabled = false;
  const code = h('textarea', { class: 'link-code', readonly: true, rows: 3, 'aria-label': 'Link code', spellcheck: 'false' });
  code.value = res.code;
  const left = h('span', { class: 'muted small', 'aria-live': 'off' });
  const copy = h('button', { class: 'btn small', type: 'button', onclick: async () => {
    try {
      await navigator.clipboard.writeText(res.code);
      kit.toast('Link code copied');
    } catch {
      code.select();
    }
  } }, icon('copy'), 'Copy code');
  clear(box).append(
    h('div', { class: 'qr-wrap' }, h('img', { class: 'qr', src: res.qr, alt: 'QR code of the link code', width: 220, height: 220 })),
    h('ol', { class: 'steps small' },
      h('li', {}, 'On the new device, install Parley and run ', h('code', {}, 'parley device join CODE'), ' with this code (scan it, or copy it).'),
      h('li', {}, 'Then start its daemon: it syncs your rooms and appears in this list.')),
    code, h('div', { class: 'link-row' }, copy, left));
  const tick = () => {
    const s = Math.max(0, Math.round((res.expires_ms - Date.now()) / 1000));
    left.textContent = s > 0 ? `Single use; expires in ${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}` : 'Expired: link a new device again for a fresh code.';
    if (s === 0) { clearInterval(box.timer); box.querySelector('.qr-wrap').classList.add('expired'); }
  };
  tick();
  box.timer = setInterval(tick, 1000);
}

// The Profile dialog's extras: "Change avatar" (an image, cut to a square
// of at most 256 px in the browser), the typing and presence switches
// (the node's `settings`), and the list of blocked users.

import { h } from './dom.js';
import { call, blobURL } from './api.js';
import { forgetProfile, myStatus, setMyStatus } from './people.js';

let app;

export function initSettings(a) { app = a; }

// profileExtras adds the sections to the Profile dialog d.
export async function profileExtras(d) {
  const form = d.body.querySelector('form');
  const me = app.S.me.user;
  const pic = h('span', { class: 'avatar-big' }, app.avatar(me, app.nameOf(me)));
  const { file, status } = imagePicker('Avatar image', 'Avatar changed', async (png) => {
    await call('profile/set', { avatar: png });
    forgetProfile(me);
    pic.replaceChildren(app.avatar(me, app.nameOf(me)));
  });
  const typing = h('input', { type: 'checkbox', role: 'switch', id: 'sw-typing', 'aria-describedby': 'sw-typing-hint' });
  const presence = h('input', { type: 'checkbox', role: 'switch', id: 'sw-presence', 'aria-describedby': 'sw-presence-hint' });
  const status2 = h('select', { id: 'sel-status', class: 'status-select' },
    ['online', 'away', 'offline'].map((v) => h('option', { value: v, selected: myStatus() === v }, v[0].toUpperCase() + v.slice(1))));
  status2.addEventListener('change', () => setMyStatus(status2.value).catch((e) => {
    status2.value = myStatus();
    app.toast(e.message);
  }));
  const blocked = h('ul', { class: 'member-list blocked', 'aria-label': 'Blocked users' });
  const section = h('div', { class: 'profile-extras' },
    h('div', { class: 'avatar-row' }, pic,
      h('button', { class: 'btn', type: 'button', onclick: () => file.click() }, 'Change avatar'), file, status),
    h('div', { class: 'switch-row' }, h('label', { for: 'sel-status' }, 'Status'), status2),
    h('h3', {}, 'Privacy'),
    h('div', { class: 'switch-row' }, h('span', {}, h('label', { for: 'sw-typing' }, 'Typing indicators'),
      h('span', { class: 'muted small', id: 'sw-typing-hint' }, 'Tell others when you type, and see when they do')), typing),
    h('div', { class: 'switch-row' }, h('span', {}, h('label', { for: 'sw-presence' }, 'Presence'),
      h('span', { class: 'muted small', id: 'sw-presence-hint' }, 'Share when you are online, and see when others are')), presence),
    h('h3', {}, 'Blocked users'), blocked);
  form.insertBefore(section, form.querySelector('.error'));
  for (const [box, key] of [[typing, 'typing'], [presence, 'presence']]) {
    box.addEventListener('change', async () => {
      try {
        const s = await call('settings', { [key]: box.checked });
        box.checked = s[key];
        if (key === 'presence' && s.presence) setMyStatus(myStatus()).catch(() => {});
      } catch (e) {
        box.checked = !box.checked;
        app.toast(e.message);
      }
    });
  }
  try {
    const [s, b] = await Promise.all([call('settings', {}), call('blocked')]);
    typing.checked = s.typing;
    presence.checked = s.presence;
    showBlocked(blocked, b.blocked || []);
  } catch (e) { status.textContent = e.message; }
}

// roomAvatarRow is the Room settings row with the room's avatar and
// "Change room avatar" (the image cut to a square as for a user's avatar;
// room/set with avatar). changed runs once the node took it.
export function roomAvatarRow(room, r, changed) {
  const pic = h('span', { class: 'room-icon avatar-big', 'aria-hidden': 'true' });
  const paint = (a) => {
    if (a) pic.replaceChildren(h('img', { src: blobURL(a.cid, a.key), alt: '' }));
    else pic.textContent = ((r && r.name) || '?').charAt(0).toUpperCase();
  };
  paint(r && r.avatar);
  const { file, status } = imagePicker('Room avatar image', 'Room avatar changed', async (png) => {
    await call('room/set', { room, avatar: png });
    paint((await call('room/info', { room })).avatar_media);
    changed();
  });
  return h('div', { class: 'avatar-row' }, pic,
    h('button', { class: 'btn', type: 'button', onclick: () => file.click() }, 'Change room avatar'), file, status);
}

// imagePicker is a hidden file input for an image and a status line: a
// picked image is cut to a square PNG (squareImage) and handed to upload;
// the status says done, or the error.
function imagePicker(label, doneText, upload) {
  const file = h('input', { type: 'file', accept: 'image/png,image/jpeg,image/gif,image/webp', hidden: true, 'aria-label': label });
  const status = h('span', { class: 'muted small', role: 'status' });
  file.addEventListener('change', async () => {
    const f = file.files[0];
    file.value = '';
    if (!f) return;
    status.textContent = 'Uploading…';
    try {
      await upload(await squareImage(f));
      status.textContent = doneText;
    } catch (e) { status.textContent = e.message; }
  });
  return { file, status };
}

function showBlocked(ul, users) {
  ul.replaceChildren();
  if (users.length === 0) ul.append(h('li', { class: 'muted small' }, 'No one is blocked.'));
  for (const u of users) {
    const name = app.nameOf(u);
    ul.append(h('li', { class: 'member-row' }, app.avatar(u, name),
      h('span', { class: 'member-name' }, h('strong', {}, name)),
      h('button', { class: 'btn small', type: 'button', onclick: async () => {
        try {
          const r = await call('unblock', { user: u });
          showBlocked(ul, r.blocked || []);
          app.reload();
        } catch (e) { app.toast(e.message); }
      } }, 'Unblock')));
  }
}

// squareImage cuts the image to a centred square of at most 256 px and
// returns it as base64 PNG (JSON carries bytes as base64).
async function squareImage(f) {
  const bmp = await createImageBitmap(f);
  const side = Math.min(bmp.width, bmp.height);
  const out = Math.min(256, side);
  const c = document.createElement('canvas');
  c.width = out;
  c.height = out;
  c.getContext('2d').drawImage(bmp, (bmp.width - side) / 2, (bmp.height - side) / 2, side, side, 0, 0, out, out);
  const blob = await new Promise((res) => c.toBlob(res, 'image/png'));
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

// People: avatars (from profiles, cached per user) and presence dots
// (presence/get, then the watch stream's presence lines). This user is
// set online when the app opens, when the presence switch allows it.

import { h } from './dom.js';
import { call, blobURL } from './api.js';

let app;
const profiles = new Map(); // user -> Promise of the avatar URL ('' for none)
const presence = new Map(); // user -> 'online' | 'away' | 'offline' | ''
const asked = new Map(); // user -> when presence/get was last asked
let announced = 0;

let mine = 'online'; // this user's chosen status (settings.js sets it)

export function initPeople(a) {
  app = a;
  // The status chosen earlier stays (away, offline); else online.
  call('presence/get', { user: a.S.me.user }).then((r) => {
    if (r.presence === 'away' || r.presence === 'offline') mine = r.presence;
  }, () => {}).finally(announce);
}

// announce sends this user's status to every room (nothing when the
// presence switch is off).
function announce() {
  announced = Date.now();
  call('presence', { presence: mine }).catch(() => { /* presence is off */ });
}

export function myStatus() { return mine; }

// setMyStatus sets this user's status: online, away or offline.
export async function setMyStatus(s) {
  await call('presence', { presence: s });
  mine = s;
  setPresence(app.S.me.user, s);
}

function profile(user) {
  let p = profiles.get(user);
  if (!p) {
    p = call('profile/get', { user }).then((r) => {
      if (r.display_name && app.S.names[user] !== r.display_name) {
        app.S.names[user] = r.display_name;
        let dm = false;
        for (const room of app.S.rooms.values()) if (room.dm === user) { room.name = r.display_name; dm = true; }
        if (dm) app.renderRooms();
      }
      return r.avatar_media ? blobURL(r.avatar_media.cid, r.avatar_media.key) : '';
    }, () => '');
    profiles.set(user, p);
  }
  return p;
}

function setImage(span, url) {
  const img = span.querySelector('img');
  if (img && img.getAttribute('src') === url) return;
  span.replaceChildren(h('img', { src: url, alt: '', loading: 'lazy', decoding: 'async' }));
  span.classList.add('has-image');
}

// paintAvatar puts the user's avatar image into an avatar span (which
// shows an initial until then) and returns the span.
export function paintAvatar(span, user) {
  if (user) profile(user).then((url) => { if (url) setImage(span, url); });
  return span;
}

// memberEvent takes a member or profile event: the user's profile may have
// changed; and someone who just joined learns at once that this user is
// online (the node repeats presence only every minute).
export function memberEvent(ev, me) {
  const user = ev.state_key || ev.sender;
  forgetProfile(user);
  if (ev.type === 'member' && ev.membership === 'join' && user !== me && Date.now() - announced > 5000) announce();
}

// forgetProfile drops what is known of a user's profile (a member event
// may carry a new avatar or name) and repaints their avatars.
export function forgetProfile(user) {
  if (!user || !profiles.has(user)) return;
  profiles.delete(user);
  profile(user).then((url) => {
    if (!url) return;
    for (const span of document.querySelectorAll('.avatar[data-user]')) {
      if (span.dataset.user === user) setImage(span, url);
    }
  });
}

const LABEL = { online: 'online', away: 'away', offline: 'offline', '': 'offline' };

function paintDot(dot, state) {
  dot.className = 'presence ' + (state || 'offline');
  dot.setAttribute('aria-label', LABEL[state || '']);
  dot.title = LABEL[state || ''];
}

// presenceDot is a dot showing the user's presence, kept current.
export function presenceDot(user) {
  const dot = h('span', { role: 'img', 'data-presence': user });
  paintDot(dot, presence.get(user));
  if (Date.now() - (asked.get(user) || 0) > 20e3) {
    asked.set(user, Date.now());
    call('presence/get', { user }).then((r) => setPresence(user, r.presence), () => {});
  }
  return dot;
}

function setPresence(user, state) {
  if (presence.get(user) === state) return;
  presence.set(user, state);
  for (const dot of document.querySelectorAll('[data-presence]')) {
    if (dot.dataset.presence === user) paintDot(dot, state);
  }
}

// onPresence takes a watch line of kind presence.
export function onPresence(it) {
  if (it.user) setPresence(it.user, it.presence || 'offline');
}

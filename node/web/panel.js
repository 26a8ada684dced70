// The side panel beside the timeline: one at a time (a thread, the
// members, search results), a `complementary` region named by its title.

import { h } from './dom.js';
import { icon } from './icons.js';

let cur = null; // {kind, el, body, onClose, opener}

// openPanel replaces the panel with a new one and returns it. The focus
// moves into it (Tab then reaches its controls); closing it returns the
// focus to the control that opened it.
export function openPanel(kind, title, onClose) {
  const a = document.activeElement;
  const opener = cur && cur.el.contains(a) ? cur.opener : a;
  closePanel();
  const shell = document.querySelector('.shell');
  const body = h('div', { class: 'panel-body' });
  const el = h('aside', { class: 'panel', role: 'complementary', 'aria-label': title, tabindex: '-1' },
    h('header', { class: 'panel-head' }, h('h2', {}, title),
      h('button', { class: 'icon-btn small', type: 'button', 'aria-label': 'Close panel', title: 'Close', onclick: closePanel }, icon('x'))),
    body);
  el.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !e.defaultPrevented) closePanel(); });
  shell.append(el);
  shell.classList.add('with-panel');
  cur = { kind, el, body, onClose, opener };
  el.focus();
  return cur;
}

export function closePanel() {
  const was = cur;
  cur = null;
  if (was) {
    const a = document.activeElement;
    const inside = !a || a === document.body || was.el.contains(a);
    was.el.remove();
    if (inside && was.opener && was.opener !== document.body && was.opener.isConnected) was.opener.focus();
    if (was.onClose) was.onClose();
  }
  const shell = document.querySelector('.shell');
  if (shell) shell.classList.remove('with-panel');
}

// panelOf is the open panel of kind, or null.
export function panelOf(kind) {
  return cur && cur.kind === kind ? cur : null;
}

// Two walls behind the node's Markdown sanitizer: DOMPurify (vendored,
// vendor/dompurify/VERSION) cleans the node's HTML with this file's
// allow-list; then the result is parsed inertly (DOMParser runs no script
// and loads nothing) and rebuilt from the same allow-list of elements and
// attributes; everything else becomes its text. Links keep only http,
// https and mailto targets.

import DOMPurify from './vendor/dompurify/purify.es.js';

const ALLOWED = new Set(['p', 'br', 'strong', 'b', 'em', 'i', 'u', 'del', 's', 'code', 'pre', 'blockquote',
  'ul', 'ol', 'li', 'a', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'span', 'sup', 'sub',
  'table', 'thead', 'tbody', 'tr', 'th', 'td']);

// safeHTML returns a fragment holding the allowed part of html.
export function safeHTML(html) {
  const clean = DOMPurify.sanitize(html, {
    ALLOWED_TAGS: [...ALLOWED], ALLOWED_ATTR: ['href', 'align'],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  });
  const doc = new DOMParser().parseFromString(`<body>${clean}</body>`, 'text/html');
  const out = document.createDocumentFragment();
  copy(doc.body, out);
  return out;
}

function copy(from, to) {
  for (const n of from.childNodes) {
    if (n.nodeType === Node.TEXT_NODE) {
      to.append(document.createTextNode(n.data));
      continue;
    }
    if (n.nodeType !== Node.ELEMENT_NODE) continue;
    const tag = n.localName;
    if (tag === 'script' || tag === 'style' || tag === 'template') continue;
    if (!ALLOWED.has(tag)) {
      copy(n, to); // unknown element: keep its text
      continue;
    }
    const el = document.createElement(tag);
    if (tag === 'a') {
      const href = n.getAttribute('href') || '';
      try {
        const u = new URL(href, location.href);
        if (['http:', 'https:', 'mailto:'].includes(u.protocol)) {
          el.setAttribute('href', u.href);
          el.setAttribute('target', '_blank');
          el.setAttribute('rel', 'noopener noreferrer');
        }
      } catch { /* no link */ }
    }
    if ((tag === 'td' || tag === 'th') && /^(left|right|center)$/.test(n.getAttribute('align') || '')) {
      el.setAttribute('align', n.getAttribute('align'));
    }
    copy(n, el);
    to.append(el);
  }
}

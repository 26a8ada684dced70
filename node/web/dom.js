// Small DOM helpers: h builds elements; nothing here parses HTML.

// h(tag, props, ...children): props set attributes ("class", "aria-*",
// "role"...), properties (keys starting with "."), and listeners ("on*").
// Children are nodes, strings (text nodes) or arrays of them; null and
// false are skipped.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k.startsWith('.')) el[k.slice(1)] = v;
    else if (k === 'style') setStyle(el, v); // CSSOM: the CSP forbids style attributes
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function setStyle(el, css) {
  for (const decl of String(css).split(';')) {
    const i = decl.indexOf(':');
    if (i > 0) el.style.setProperty(decl.slice(0, i).trim(), decl.slice(i + 1).trim());
  }
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear empties an element.
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

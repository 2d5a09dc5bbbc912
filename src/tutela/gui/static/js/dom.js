// Building DOM nodes without innerHTML: every text from the cluster goes in as text, never
// as markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

// A state chip (ISP, OSF, ALIVE, DEAD...) coloured by its class.
export function chip(state, extra = {}) {
  const name = state || "UNKNOWN";
  return h("span", { class: `chip state-${name.toLowerCase()}`, ...extra }, name);
}

// "2026-12-07T09:16:45.412+00:00" -> "09:16:45.412" (the day too when it is not today).
export function clock(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const time = date.toISOString().slice(11, 23);
  const today = new Date().toISOString().slice(0, 10);
  const day = date.toISOString().slice(0, 10);
  return day === today ? time : `${day} ${time}`;
}

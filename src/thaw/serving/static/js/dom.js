// Small DOM helpers. Text always goes in through textContent: titles and ids are user data.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });

export function count(value) {
  return integer.format(value);
}

export function decimal(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toFixed(digits);
}

// Dates as YYYY-MM-DD (UTC): the same on every machine and in every locale.
export function day(value) {
  const date = value instanceof Date ? value : new Date(asUtc(value));
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().slice(0, 10);
}

export function moment(value) {
  const date = new Date(asUtc(value));
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

// The API sends naive UTC timestamps (no zone): read them as UTC, not local time.
export function asUtc(value) {
  return typeof value === "string" && !/[zZ]|[+-]\d\d:\d\d$/.test(value) ? value + "Z" : value;
}

export function tableWrap(label, table) {
  // A focusable scroll region, so keyboard users can scroll a wide table on a phone.
  return h("div", { class: "table-wrap", role: "region", "aria-label": label, tabindex: "0" }, table);
}

export function table(caption, headers, rows, { numeric = [] } = {}) {
  return h(
    "table",
    {},
    caption ? h("caption", { text: caption }) : null,
    h("thead", {}, h("tr", {}, headers.map((name, i) => h("th", { scope: "col", class: numeric.includes(i) ? "num" : null, text: name })))),
    h(
      "tbody",
      {},
      rows.map((cells) =>
        h("tr", {}, cells.map((cell, i) => h(i === 0 ? "th" : "td", { scope: i === 0 ? "row" : null, class: numeric.includes(i) ? "num" : null }, cell))),
      ),
    ),
  );
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function attributesText(attributes) {
  const parts = Object.entries(attributes || {}).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v}`);
  return parts.length ? parts.join(" · ") : "none";
}

// Add an item: POST /items, then its similar items and its audience straight away.

import { api, path } from "./api.js";
import { $, decimal, h, replace, table, tableWrap } from "./dom.js";
import { renderRecs, userLink } from "./lists.js";

let rows = 0;
let started = false;

export function setupAddItem(showError) {
  $("#ai-add-attr").addEventListener("click", () => {
    const row = addAttributeRow();
    row.querySelector("input").focus();
  });
  $("#ai-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submit().catch((error) => {
      $("#ai-status").textContent = `Not added: ${error.message}`;
      $("#ai-status").classList.add("error");
      showError(error, { quiet: true });
    });
  });
  $("#ai-id").value = freshId();
  addAttributeRow();
}

export async function loadAddItem() {
  if (started) return;
  started = true;
  const found = await api("/explore/attributes", { params: { of: "items" } });
  replace($("#ai-attr-names"), found.attributes.map((a) => h("option", { value: a.name })));
}

function freshId() {
  return `new-${Date.now().toString(36)}`;
}

function addAttributeRow() {
  rows += 1;
  const n = rows;
  const row = h(
    "div",
    { class: "attr-row" },
    h("label", { for: `ai-attr-key-${n}`, class: "sr-only", text: `Attribute ${n} name` }),
    h("input", { id: `ai-attr-key-${n}`, class: "attr-key", placeholder: "name", list: "ai-attr-names", autocomplete: "off", maxlength: 100 }),
    h("label", { for: `ai-attr-value-${n}`, class: "sr-only", text: `Attribute ${n} value` }),
    h("input", { id: `ai-attr-value-${n}`, class: "attr-value", placeholder: "value", autocomplete: "off", maxlength: 1000, "aria-describedby": "ai-attr-hint" }),
    h("button", { type: "button", class: "remove", "aria-label": `Remove attribute ${n}`, onclick: () => row.remove() }, "×"),
  );
  $("#ai-attributes").append(row);
  return row;
}

function parseValue(raw) {
  const text = raw.trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (text.includes(",")) return text.split(",").map((v) => v.trim()).filter(Boolean);
  return text;
}

function readForm() {
  const id = $("#ai-id").value.trim();
  const title = $("#ai-title").value.trim();
  const missing = [];
  if (!id) missing.push($("#ai-id"));
  if (!title) missing.push($("#ai-title"));
  for (const input of [$("#ai-id"), $("#ai-title")]) input.setAttribute("aria-invalid", missing.includes(input) ? "true" : "false");
  if (missing.length) {
    missing[0].focus();
    throw new Error(`${missing.map((m) => m.name).join(" and ")} ${missing.length > 1 ? "are" : "is"} required`);
  }
  const attributes = {};
  document.querySelectorAll("#ai-attributes .attr-row").forEach((row) => {
    const key = row.querySelector(".attr-key").value.trim();
    const value = row.querySelector(".attr-value").value;
    if (key && value.trim()) attributes[key] = parseValue(value);
  });
  const text = $("#ai-text").value.trim();
  return { id, title, text: text || null, attributes };
}

async function submit() {
  const status = $("#ai-status");
  status.classList.remove("error");
  const item = readForm();
  status.textContent = "Adding…";
  const started = performance.now();
  const written = await api("/items", { method: "POST", body: item });
  const stored = performance.now() - started;
  const [similar, audience] = await Promise.all([
    api(path`/items/${item.id}/similar`, { params: { k: 10, explain: true } }),
    api(path`/explore/items/${item.id}/audience`, { params: { k: 10 } }),
  ]);
  const verb = written.inserted ? "Added" : written.updated ? "Updated" : "Unchanged:";
  replace(
    status,
    `${verb} “${item.title}” (id ${item.id}) in ${Math.round(stored)} ms; `,
    h("a", { href: `#explore/item/${encodeURIComponent(item.id)}`, text: "open it in Explore" }),
    ".",
  );
  renderRecs($("#ai-similar"), similar.items, { empty: "The catalogue has no other items." });
  renderAudience($("#ai-audience"), audience);
}

export function renderAudience(box, audience) {
  if (!audience.users.length) {
    replace(box, h("p", { class: "empty", text: `No stored user has a ${audience.source} vector to score against yet.` }));
    return;
  }
  const rows = audience.users.map((u) => [userLink(u.user), decimal(u.score, 3), `#${u.rank}`, String(u.n_history)]);
  replace(
    box,
    tableWrap(
      "Users the item would be recommended to",
      table(null, ["User", "Score", "Rank in their list", "History items"], rows, { numeric: [1, 2, 3] }),
    ),
    h(
      "p",
      { class: "hint source" },
      `Top ${audience.users.length} of ${audience.users_scored} users with a signal (of ${audience.users_total}), scored in the `,
      h("strong", { text: audience.source }),
      ` space of ${audience.model_version}; users who already interacted with the item are left out. “Rank” is the item's position among everything the user has not seen. Source: `,
      h("code", { text: "GET /explore/items/{id}/audience" }),
      ".",
    ),
  );
}

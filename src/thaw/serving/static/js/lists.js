// Rendering of recommendation lists and user lists shared by every section.

import { h, decimal } from "./dom.js";

const SOURCE_TEXT = {
  model: "the trained model",
  content: "content similarity",
  popularity: "popularity fallback",
  exploration: "exploration of a little-shown item",
};

export function itemLink(id, title) {
  return h("a", { href: `#explore/item/${encodeURIComponent(id)}`, class: "item-link" }, title || id);
}

export function userLink(id) {
  return h("a", { href: `#explore/user/${encodeURIComponent(id)}`, class: "user-link" }, id);
}

// One <li> per result: rank, title, source badge, score and the reason when there is one.
// `previous` is the ids of the list shown before; items not in it are marked "new".
export function renderRecs(list, items, { previous = null, empty = "Nothing to show yet.", action = null } = {}) {
  list.replaceChildren();
  if (!items.length) {
    list.append(h("li", { class: "empty", text: empty }));
    return 0;
  }
  const before = previous ? new Set(previous) : null;
  let fresh = 0;
  items.forEach((item) => {
    const isNew = before !== null && !before.has(item.id);
    if (isNew) fresh += 1;
    const reason = item.reason ? item.reason.detail : "";
    list.append(
      h(
        "li",
        { class: isNew ? "rec new" : "rec", dataset: { id: item.id, source: item.source } },
        h(
          "div",
          { class: "rec-head" },
          itemLink(item.id, item.title),
          isNew ? h("span", { class: "badge new", text: "new" }) : null,
        ),
        h(
          "div",
          { class: "rec-meta" },
          h("span", { class: `badge src src-${item.source}`, title: SOURCE_TEXT[item.source] || item.source }, item.source),
          h("span", { class: "score" }, `score ${decimal(item.score, 3)}`),
          h("span", { class: "rec-id" }, `id ${item.id}`),
          action ? action(item) : null,
        ),
        reason ? h("p", { class: "reason" }, h("span", { class: "sr-only", text: "Why: " }), reason) : null,
      ),
    );
  });
  return fresh;
}

export function sourceLegend() {
  return h(
    "p",
    { class: "hint legend" },
    "Source: ",
    Object.entries(SOURCE_TEXT).map(([key, text], i) => [
      i ? " · " : "",
      h("span", { class: `badge src src-${key}`, text: key }),
      ` ${text}`,
    ]),
  );
}

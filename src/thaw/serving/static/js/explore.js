// Explore: any user (history and recommendations) or item (similar, who interacted, audience).

import { api, path } from "./api.js";
import { renderAudience } from "./additem.js";
import { $, attributesText, count, decimal, h, moment, replace, table, tableWrap } from "./dom.js";
import { itemLink, renderRecs, sourceLegend, userLink } from "./lists.js";

export function setupExplore(showError) {
  $("#ex-user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("#ex-user-id").value.trim();
    if (id) window.location.hash = `#explore/user/${encodeURIComponent(id)}`;
  });
  $("#ex-item-form").addEventListener("submit", (event) => {
    event.preventDefault();
    findItem($("#ex-item-q").value.trim()).catch(showError);
  });
}

async function findItem(query) {
  if (!query) return;
  const found = await api("/explore/items", { params: { q: query, limit: 10 } });
  const hits = $("#ex-item-hits");
  hits.replaceChildren();
  if (found.items.length === 1 || (found.items.length && found.items[0].id === query)) {
    window.location.hash = `#explore/item/${encodeURIComponent(found.items[0].id)}`;
    return;
  }
  if (!found.items.length) {
    hits.append(h("li", { class: "empty", text: `No item has id “${query}” or a title with those words.` }));
    return;
  }
  hits.append(h("li", { class: "hint", text: `${count(found.matches)} items match; the most popular:` }));
  found.items.forEach((item) => hits.append(h("li", {}, itemLink(item.id, item.title), h("span", { class: "hint", text: ` · id ${item.id}` }))));
}

export async function showUser(id) {
  $("#ex-user-id").value = id;
  const box = $("#ex-result");
  box.setAttribute("aria-busy", "true");
  const [history, recs] = await Promise.all([
    api(path`/explore/users/${id}/history`, { params: { limit: 50 } }),
    api(path`/users/${id}/recommendations`, { params: { k: 10, explain: true } }),
  ]);
  const recList = h("ol", { class: "recs", id: "ex-user-recs", "aria-labelledby": "ex-user-recs-heading" });
  renderRecs(recList, recs.items, { empty: "No recommendations." });
  const rows = history.events.map((e) => [itemLink(e.item, e.title), e.type, e.value === null ? "–" : decimal(e.value, 1), moment(e.timestamp)]);
  replace(
    box,
    h("h2", { id: "ex-user-heading-result", tabindex: "-1" }, "User ", h("code", { text: history.id })),
    h("dl", { class: "facts" },
      h("dt", { text: "Attributes" }), h("dd", { text: attributesText(history.attributes) }),
      history.text ? [h("dt", { text: "Text" }), h("dd", { text: history.text })] : null,
      h("dt", { text: "Events" }), h("dd", { text: count(history.n_events) }),
    ),
    h(
      "div",
      { class: "columns" },
      h("div", { class: "card" },
        h("h3", { id: "ex-user-history-heading", text: `History (latest ${history.events.length} of ${count(history.n_events)})` }),
        rows.length
          ? tableWrap("History", table(null, ["Item", "Event", "Value", "When"], rows, { numeric: [2] }))
          : h("p", { class: "empty", text: "No events yet: recommendations fall back to attributes and popularity." })),
      h("div", { class: "card" },
        h("h3", { id: "ex-user-recs-heading", text: "Recommendations" }),
        h("p", { class: "hint", text: `Model ${recs.model_version}; items in the history are left out.` }),
        sourceLegend(),
        recList),
    ),
  );
  box.setAttribute("aria-busy", "false");
}

export async function showItem(id) {
  const box = $("#ex-result");
  box.setAttribute("aria-busy", "true");
  const [item, similar, users, audience] = await Promise.all([
    api(path`/items/${id}`),
    api(path`/items/${id}/similar`, { params: { k: 10, explain: true } }),
    api(path`/explore/items/${id}/users`, { params: { limit: 20 } }),
    api(path`/explore/items/${id}/audience`, { params: { k: 10 } }),
  ]);
  $("#ex-item-q").value = id;
  $("#ex-item-hits").replaceChildren();
  const similarList = h("ol", { class: "recs", id: "ex-item-similar", "aria-labelledby": "ex-item-similar-heading" });
  renderRecs(similarList, similar.items, { empty: "No other items." });
  const audienceBox = h("div", { id: "ex-item-audience" });
  renderAudience(audienceBox, audience);
  const userRows = users.users.map((u) => [userLink(u.user), u.types.join(", "), String(u.events), u.last_value === null ? "–" : decimal(u.last_value, 1), moment(u.last_timestamp)]);
  replace(
    box,
    h("h2", { id: "ex-item-heading-result", tabindex: "-1" }, item.title || item.id, " ", h("span", { class: "hint" }, "id ", h("code", { text: item.id }))),
    h("dl", { class: "facts" },
      item.text ? [h("dt", { text: "Description" }), h("dd", { text: item.text })] : null,
      h("dt", { text: "Attributes" }), h("dd", { text: attributesText(item.attributes) }),
      h("dt", { text: "Exposure" }), h("dd", { text: `${count(item.impressions)} impression${item.impressions === 1 ? "" : "s"}, ${decimal(item.interactions, 1)} weighted interactions` }),
      item.created_at ? [h("dt", { text: "Added" }), h("dd", { text: moment(item.created_at) })] : null,
    ),
    h(
      "div",
      { class: "columns" },
      h("div", { class: "card" },
        h("h3", { id: "ex-item-similar-heading", text: "Similar items" }),
        h("p", { class: "hint", text: `Model ${similar.model_version}.` }),
        similarList),
      h("div", { class: "card" },
        h("h3", { text: `Who interacted (${count(users.n_users)} users, ${count(users.n_events)} events)` }),
        userRows.length
          ? tableWrap("Users who interacted", table(null, ["User", "Event types", "Events", "Last value", "Last event"], userRows, { numeric: [2, 3] }))
          : h("p", { class: "empty", text: "Nobody yet: a cold item." }),
        h("h3", { text: "Would be recommended to" }),
        audienceBox),
    ),
  );
  box.setAttribute("aria-busy", "false");
}

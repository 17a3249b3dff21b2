// Be a new user: attributes, a few likes or star ratings -> POST /recommendations after every change.
// An item is either liked or rated, never both: a like is a purchase-strength signal, a rating of
// v stars counts like a stored rating event of value v (a 1-star rating pulls far less than a like).

import { api } from "./api.js";
import { $, debounce, h } from "./dom.js";
import { renderRecs, sourceLegend } from "./lists.js";

const MAX_CHOICES = 60; // an attribute with more distinct values gets a text field, not a list
const MAX_FIELDS = 6;
const STARS = [1, 2, 3, 4, 5]; // the values sent; the API's default rating scale is 1 to 5

const state = { liked: new Map(), rated: new Map(), attributes: {}, text: "", previous: null, request: 0, started: false };

export function setupNewUser(showError) {
  const search = $("#nu-search");
  const runSearch = debounce(() => findItems(search.value).catch(showError), 200);
  search.addEventListener("input", runSearch);
  $("#nu-text").addEventListener("input", debounce((event) => {
    state.text = event.target.value.trim();
    refresh("your description").catch(showError);
  }, 400));
  $("#nu-about").addEventListener("submit", (event) => event.preventDefault());
  $("#nu-reset").addEventListener("click", () => {
    state.liked.clear();
    state.rated.clear();
    state.attributes = {};
    state.text = "";
    state.previous = null;
    $("#nu-pick-status").textContent = "";
    $("#nu-about").reset();
    renderLiked();
    syncPressed();
    refresh(null).catch(showError);
  });
  state.showError = showError;
}

export async function loadNewUser() {
  if (!state.started) {
    state.started = true;
    const attributes = await api("/explore/attributes", { params: { of: "users" } });
    renderAttributeFields(attributes.attributes);
    renderLiked();
    $("#nu-recs").before(sourceLegend());
  }
  await Promise.all([findItems($("#nu-search").value), refresh(null)]);
}

function renderAttributeFields(attributes) {
  const box = $("#nu-attributes");
  box.replaceChildren();
  const usable = attributes.filter((a) => a.kind === "numeric" || a.distinct <= MAX_CHOICES).slice(0, MAX_FIELDS);
  if (!usable.length) {
    box.append(h("p", { class: "hint", text: "Stored users have no attributes to choose from." }));
    return;
  }
  usable.forEach((attribute, n) => {
    const id = `nu-attr-${n}`;
    let control;
    if (attribute.kind === "numeric" && attribute.distinct > MAX_CHOICES) {
      control = h("input", {
        id, type: "number", inputmode: "decimal",
        min: attribute.minimum, max: attribute.maximum,
        placeholder: `${attribute.minimum}–${attribute.maximum}`,
      });
    } else {
      control = h(
        "select",
        { id },
        h("option", { value: "", text: "(not given)" }),
        attribute.values.map(([value, n]) => h("option", { value, text: `${value} (${n} users)` })),
      );
    }
    const update = () => {
      const raw = control.value.trim();
      if (raw === "") delete state.attributes[attribute.name];
      else if (attribute.kind === "numeric") state.attributes[attribute.name] = Number(raw);
      else if (attribute.kind === "list") state.attributes[attribute.name] = [raw];
      else state.attributes[attribute.name] = raw;
      refresh(raw === "" ? `clearing ${attribute.name}` : `setting ${attribute.name} to ${raw}`).catch(state.showError);
    };
    control.addEventListener("change", update);
    box.append(h("div", { class: "field" }, h("label", { for: id, text: attribute.name }), control));
  });
}

async function findItems(query) {
  const found = await api("/explore/items", { params: { q: query.trim(), limit: 12 } });
  const list = $("#nu-results");
  list.replaceChildren();
  list.dataset.query = query.trim(); // which search the list shows (tests wait on it)
  if (!found.items.length) {
    list.append(h("li", { class: "empty", text: `No item title contains “${query}”.` }));
    return;
  }
  found.items.forEach((item, n) => {
    const name = item.title || item.id;
    const button = h("button", {
      type: "button",
      class: "like",
      "aria-pressed": state.liked.has(item.id) ? "true" : "false",
      dataset: { id: item.id },
      "aria-label": `Like ${name}`,
      onclick: () => toggle(item.id, item.title),
    }, h("span", { "aria-hidden": "true", class: "heart", text: "♥" }), " Like");
    list.append(
      h(
        "li",
        { class: "pick" },
        h("span", { class: "pick-title" }, name, h("span", { class: "hint", text: ` · id ${item.id}` })),
        h("div", { class: "pick-actions" }, stars(item, `nu-rate-${n}`), button),
      ),
    );
  });
  syncPressed();
}

// Five radio buttons in a fieldset: one tab stop, arrow keys change the rating, each star labelled.
function stars(item, name) {
  const title = item.title || item.id;
  const group = h("fieldset", { class: "stars", dataset: { id: item.id } }, h("legend", { class: "sr-only", text: `Rate ${title}` }));
  STARS.forEach((value) => {
    const id = `${name}-${value}`;
    group.append(
      h("input", {
        type: "radio", name, id, value, class: "star-input",
        onchange: () => rate(item.id, item.title, value),
      }),
      h(
        "label",
        { for: id, class: "star", title: `${value} of ${STARS.length} stars` },
        h("span", { "aria-hidden": "true", text: "★" }),
        h("span", { class: "sr-only", text: `${value} star${value === 1 ? "" : "s"}` }),
      ),
    );
  });
  return group;
}

function toggle(id, title) {
  const liked = !state.liked.has(id);
  if (liked) {
    state.liked.set(id, title);
    state.rated.delete(id); // liked or rated, never both
  } else state.liked.delete(id);
  syncPressed();
  renderLiked();
  refresh(`${liked ? "liking" : "un-liking"} “${title || id}”`).catch(state.showError);
}

function rate(id, title, value) {
  state.rated.set(id, { title, value });
  state.liked.delete(id);
  syncPressed();
  renderLiked();
  refresh(`rating “${title || id}” ${value} of ${STARS.length} stars`).catch(state.showError);
}

function unrate(id, title) {
  state.rated.delete(id);
  syncPressed();
  renderLiked();
  refresh(`removing your rating of “${title || id}”`).catch(state.showError);
}

// Like buttons and star groups of the search results show what the person chose.
function syncPressed() {
  document.querySelectorAll("#nu-results button.like").forEach((b) => b.setAttribute("aria-pressed", state.liked.has(b.dataset.id) ? "true" : "false"));
  document.querySelectorAll("#nu-results fieldset.stars").forEach((group) => {
    const value = state.rated.get(group.dataset.id)?.value ?? 0;
    group.dataset.value = String(value);
    group.querySelectorAll("input.star-input").forEach((input) => {
      input.checked = Number(input.value) === value;
      input.nextElementSibling.classList.toggle("on", Number(input.value) <= value);
    });
  });
}

function renderLiked() {
  const list = $("#nu-liked");
  list.replaceChildren();
  if (!state.liked.size && !state.rated.size) {
    list.append(h("li", { class: "empty", text: "Nothing liked or rated yet: search, then press Like or pick stars." }));
    return;
  }
  for (const [id, title] of state.liked) {
    list.append(
      h("li", { class: "chip", dataset: { id } }, h("span", { "aria-hidden": "true", class: "heart", text: "♥" }), h("span", { class: "sr-only", text: "Liked: " }), title || id,
        h("button", { type: "button", class: "remove", "aria-label": `Remove ${title || id} from your likes`, onclick: () => toggle(id, title) }, "×")),
    );
  }
  for (const [id, { title, value }] of state.rated) {
    list.append(
      h("li", { class: "chip rated", dataset: { id, value } }, title || id,
        h("span", { class: "chip-stars", "aria-hidden": "true", text: ` ${"★".repeat(value)}${"☆".repeat(STARS.length - value)}` }),
        h("span", { class: "sr-only", text: `, rated ${value} of ${STARS.length} stars` }),
        h("button", { type: "button", class: "remove", "aria-label": `Remove your rating of ${title || id}`, onclick: () => unrate(id, title) }, "×")),
    );
  }
}

async function refresh(cause) {
  const request = ++state.request;
  const status = $("#nu-status");
  status.textContent = "Updating…";
  const body = {
    attributes: state.attributes,
    liked_items: [...state.liked.keys()],
    rated_items: [...state.rated].map(([item, { value }]) => ({ item, value })),
    k: 10,
    explain: true,
  };
  if (state.text) body.text = state.text;
  const result = await api("/recommendations", { method: "POST", body });
  if (request !== state.request) return; // a newer change is already on its way
  const list = $("#nu-recs");
  const fresh = renderRecs(list, result.items, { previous: state.previous, empty: "No recommendations." });
  list.dataset.version = String(request);
  const what = cause ? `after ${cause}` : "for someone we know nothing about";
  status.textContent = state.previous === null
    ? `Showing ${result.items.length} items ${what} (model ${result.model_version}).`
    : `Updated ${what}: ${fresh} new in the top ${result.items.length} (model ${result.model_version}).`;
  if (state.previous !== null) $("#nu-pick-status").textContent = `${fresh} new in your top ${result.items.length}.`;
  state.previous = result.items.map((i) => i.id);
}

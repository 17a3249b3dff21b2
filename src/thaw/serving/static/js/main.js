// Entry point: tabs and hash routing, the API key, the server status line and error reporting.

import { ApiError, api, apiKey, onAuthError, setApiKey } from "./api.js";
import { loadAddItem, setupAddItem } from "./additem.js";
import { $, count } from "./dom.js";
import { setupExplore, showItem, showUser } from "./explore.js";
import { loadNewUser, setupNewUser } from "./newuser.js";
import { loadOverview } from "./overview.js";

const PANELS = ["overview", "new-user", "add-item", "explore"];
const LOADERS = { overview: loadOverview, "new-user": loadNewUser, "add-item": loadAddItem, explore: async () => {} };
let authMode = "open";

function showError(error, { quiet = false } = {}) {
  if (!(error instanceof ApiError) && !error.forUser) console.error(error); // a bug in the page, not a refusal
  if (quiet && !(error.status === 401 || error.status === 403)) return;
  const alert = $("#alert");
  alert.textContent = error.message || String(error);
  alert.hidden = false;
}

function clearError() {
  const alert = $("#alert");
  alert.hidden = true;
  alert.textContent = "";
}

function tabs() {
  return PANELS.map((name) => $(`#tab-${name}`));
}

function select(name, { focusTab = false } = {}) {
  for (const panel of PANELS) {
    const selected = panel === name;
    const tab = $(`#tab-${panel}`);
    tab.setAttribute("aria-selected", selected ? "true" : "false");
    tab.tabIndex = selected ? 0 : -1;
    $(`#${panel}`).hidden = !selected;
    if (selected && focusTab) tab.focus();
  }
}

// "#explore/item/ID" -> ["explore", "item", "ID"]
function route() {
  const [panel, kind, ...rest] = window.location.hash.replace(/^#/, "").split("/");
  return [PANELS.includes(panel) ? panel : "overview", kind, rest.length ? decodeURIComponent(rest.join("/")) : null];
}

async function render(event) {
  const head = window.location.hash.replace(/^#/, "").split("/")[0];
  if (event && head && !PANELS.includes(head)) return; // an in-page link (skip link, "jump to list")
  const [panel, kind, id] = route();
  select(panel);
  clearError();
  if (authMode === "keys" && !apiKey()) {
    const error = new Error("This server requires an API key: enter it above (a read key shows everything; adding items needs a write key).");
    error.forUser = true;
    showError(error);
    $("#api-key").focus();
    document.body.dataset.ready = panel;
    return;
  }
  try {
    await LOADERS[panel]();
    if (panel === "explore" && kind === "user" && id) await showUser(id);
    if (panel === "explore" && kind === "item" && id) await showItem(id);
    if (panel === "explore" && id) $("#ex-result h2")?.focus();
  } catch (error) {
    showError(error);
  }
  document.body.dataset.ready = panel;
}

function setupTabs() {
  const list = tabs();
  list.forEach((tab, i) => {
    tab.addEventListener("click", () => {
      window.location.hash = `#${PANELS[i]}`;
    });
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: list.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      const next = (moves[event.key] + list.length) % list.length;
      window.location.hash = `#${PANELS[next]}`;
      select(PANELS[next], { focusTab: true });
    });
  });
}

function setupKey() {
  const form = $("#key-form");
  const input = $("#api-key");
  input.value = apiKey();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    $("#key-state").textContent = input.value.trim() ? "Key saved for this tab." : "No key set.";
    render(null);
  });
  $("#key-forget").addEventListener("click", () => {
    setApiKey("");
    input.value = "";
    $("#key-state").textContent = "Key forgotten.";
    render(null);
  });
  onAuthError(() => {
    form.hidden = false;
  });
}

async function checkHealth() {
  const status = $("#server-status");
  try {
    const health = await api("/health");
    authMode = health.auth;
    $("#key-form").hidden = health.auth !== "keys";
    status.textContent = `${count(health.items)} items · model ${health.model_version} · ${health.auth === "keys" ? "API keys required" : "open API"}`;
  } catch (error) {
    status.textContent = "Server not reachable.";
    showError(error);
  }
}

async function start() {
  setupTabs();
  setupKey();
  setupNewUser(showError);
  setupAddItem(showError);
  setupExplore(showError);
  await checkHealth();
  window.addEventListener("hashchange", render);
  await render(null);
}

start();

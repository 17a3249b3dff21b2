// Calls to this server's API; the key (if any) lives in sessionStorage for this tab only.

const KEY_NAME = "thaw.apiKey";
const listeners = new Set();

export function apiKey() {
  return sessionStorage.getItem(KEY_NAME) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_NAME, key);
  else sessionStorage.removeItem(KEY_NAME);
}

// Called with every ApiError whose status is 401 or 403 (the page then asks for a key).
export function onAuthError(listener) {
  listeners.add(listener);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, { method = "GET", params = null, body = undefined } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, `cannot reach the server: ${error.message}`);
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = describe((await response.json()).detail);
    } catch (_) {
      // not JSON: keep the status text
    }
    const error = new ApiError(response.status, `${response.status}: ${detail}`);
    if (response.status === 401 || response.status === 403) listeners.forEach((l) => l(error));
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

// FastAPI errors are a string or a list of {loc, msg}: name the field at fault.
function describe(detail) {
  if (Array.isArray(detail)) {
    return detail.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".") || "request"}: ${e.msg}`).join("; ");
  }
  return String(detail);
}

export function path(strings, ...ids) {
  return strings.reduce((out, part, i) => out + part + (i < ids.length ? encodeURIComponent(ids[i]) : ""), "");
}

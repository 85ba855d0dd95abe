// Calls to the risk service's /v1 API. The API key lives in sessionStorage only (this tab, this session): never in
// the URL, never in localStorage, never in a cookie. Requests go to this origin only.

const KEY_NAME = "nbrisk.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.detail = (body && Array.isArray(body.detail) && body.detail) || [];
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
}

async function call(method, path, body, key = getKey()) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch (e) {
    throw new ApiError(0, { error: "network" });
  }
  if (!r.ok) {
    let payload = null;
    try {
      payload = await r.json();
    } catch (e) {
      payload = null;
    }
    throw new ApiError(r.status, payload);
  }
  return r;
}

export async function modelCard(key) {
  return (await call("GET", "/v1/model", undefined, key)).json();
}

export async function risk(patients, horizons) {
  return (await call("POST", "/v1/risk", { patients, horizons_months: horizons })).json();
}

export async function reportPdf(patient) {
  return (await call("POST", "/v1/report?format=pdf", { patient })).blob();
}

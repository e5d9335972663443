// The /v1 API on the same origin, with the token kept in this tab's sessionStorage.

const TOKEN_KEY = "pgbackups.token";

/** An answer other than 2xx: `field` names the input at fault when the API says so. */
export class ApiError extends Error {
  constructor(status, code, message, field = null, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.details = details;
  }
}

let signedOutListener = () => {};

/** Called when the API refuses the stored token (401 or 403): it has been forgotten. */
export function onSignedOut(listener) {
  signedOutListener = listener;
}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Checks `token` against the API; kept only when accepted. Returns the database list. */
export async function signIn(token) {
  const list = await request("GET", "/v1/databases", undefined, { token, candidate: true });
  sessionStorage.setItem(TOKEN_KEY, token);
  return list;
}

/** One API call; resolves to the JSON answer (null for 204), rejects with ApiError. */
export async function request(method, path, body = undefined, options = {}) {
  const token = options.token ?? storedToken();
  if (!token) {
    signedOutListener();
    throw new ApiError(401, "signed_out", "Sign in first.");
  }
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "unreachable", `The API cannot be reached (${error.message}).`);
  }
  // The API's own 403 `forbidden`: the token is fine, its role does not allow this request.
  const forbidden = response.status === 403 && (await roleRefusal(response));
  if (forbidden) {
    throw new ApiError(403, "forbidden", forbidden.message, null, forbidden);
  }
  if (response.status === 401 || response.status === 403) {
    // API Gateway: 401 without a token, 403 when the authorizer refuses it. Alike here.
    if (!options.candidate) {
      forgetToken();
      signedOutListener();
    }
    throw new ApiError(response.status, "unauthorized", "The API refused this token.");
  }
  if (response.status === 204) {
    return null;
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const error = (payload && payload.error) || {};
    const message = error.message || (payload && payload.message) || `HTTP ${response.status}`;
    throw new ApiError(response.status, error.code || `http_${response.status}`, message, error.field || null, error);
  }
  return payload;
}

/** The error of a 403 that the API answered for a role (not the authorizer's refusal). */
async function roleRefusal(response) {
  try {
    const error = (await response.clone().json()).error;
    return error && error.code === "forbidden" && typeof error.message === "string" ? error : null;
  } catch {
    return null;
  }
}

export const api = {
  databases: () => request("GET", "/v1/databases"),
  database: (name) => request("GET", `/v1/databases/${encodeURIComponent(name)}`),
  addDatabase: (registration) => request("POST", "/v1/databases", registration),
  changeDatabase: (name, changes) => request("PATCH", `/v1/databases/${encodeURIComponent(name)}`, changes),
  removeDatabase: (name) => request("DELETE", `/v1/databases/${encodeURIComponent(name)}`),
  backups: (name, query) => {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
    }
    return request("GET", `/v1/databases/${encodeURIComponent(name)}/backups?${params}`);
  },
  backup: (name, id) => request("GET", `/v1/databases/${encodeURIComponent(name)}/backups/${encodeURIComponent(id)}`),
  createBackup: (name) => request("POST", `/v1/databases/${encodeURIComponent(name)}/backups`),
  deleteBackup: (name, id) => request("DELETE", `/v1/databases/${encodeURIComponent(name)}/backups/${encodeURIComponent(id)}`),
  archive: (name, id) => request("GET", `/v1/databases/${encodeURIComponent(name)}/backups/${encodeURIComponent(id)}/archive`),
  putSchedule: (name, schedule) => request("PUT", `/v1/databases/${encodeURIComponent(name)}/schedule`, schedule),
  pitr: (name) => request("GET", `/v1/databases/${encodeURIComponent(name)}/pitr`),
  putPitr: (name, settings) => request("PUT", `/v1/databases/${encodeURIComponent(name)}/pitr`, settings),
  holdBackup: (name, id) => request("PUT", `${backupPath(name, id)}/hold`),
  releaseBackup: (name, id) => request("DELETE", `${backupPath(name, id)}/hold`),
  restores: (name, cursor) => request("GET", `/v1/databases/${encodeURIComponent(name)}/restores?${page(cursor)}`),
  restore: (name, id) => request("GET", `/v1/databases/${encodeURIComponent(name)}/restores/${encodeURIComponent(id)}`),
  createRestore: (name, restore) => request("POST", `/v1/databases/${encodeURIComponent(name)}/restores`, restore),
  verification: (name, id) => request("GET", `/v1/databases/${encodeURIComponent(name)}/verifications/${encodeURIComponent(id)}`),
  verificationReport: (name, id) =>
    request("GET", `/v1/databases/${encodeURIComponent(name)}/verifications/${encodeURIComponent(id)}/report`),
  createVerification: (name, drill) => request("POST", `/v1/databases/${encodeURIComponent(name)}/verifications`, drill),
};

function backupPath(name, id) {
  return `/v1/databases/${encodeURIComponent(name)}/backups/${encodeURIComponent(id)}`;
}

/** The query of a page of a list: the API's default size, from `cursor` when given. */
function page(cursor) {
  const params = new URLSearchParams();
  if (cursor) params.set("cursor", cursor);
  return params;
}

/** The API's published bounds of the retention counts ({daily: {minimum, maximum}, …}). */
export async function retentionBounds() {
  const response = await fetch("/v1/openapi.json", { cache: "no-store" });
  if (!response.ok) throw new ApiError(response.status, "openapi", `HTTP ${response.status}`);
  const document = await response.json();
  const properties = document.components.schemas.RetentionPolicy.properties;
  const bounds = {};
  for (const [name, schema] of Object.entries(properties)) {
    bounds[name] = { minimum: schema.minimum, maximum: schema.maximum };
  }
  return bounds;
}

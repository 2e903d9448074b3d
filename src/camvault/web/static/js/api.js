// Talking to the REST API. Every failure becomes an ApiError carrying the server's
// {"error": {"code", "message"}}; a 401 anywhere means the session ended.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function parseError(response) {
  try {
    const body = await response.json();
    return new ApiError(response.status, body.error.code, body.error.message);
  } catch {
    return new ApiError(response.status, "error", `The server answered ${response.status}.`);
  }
}

/** JSON request with the session cookie; resolves to the parsed body (or null). */
export async function request(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "offline", "The server cannot be reached. Check the connection.");
  }
  if (!response.ok) throw await parseError(response);
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  me: () => request("GET", "/api/auth/me"),
  login: (username, password) => request("POST", "/api/auth/login", { username, password }),
  logout: () => request("POST", "/api/auth/logout"),
  config: () => request("GET", "/api/config"),
  files: () => request("GET", "/api/files"),
  versions: (name) => request("GET", `/api/files/${encodeURIComponent(name)}/versions`),
  checkout: (name, message) =>
    request("POST", `/api/files/${encodeURIComponent(name)}/checkout`, { message }),
  cancel: (name) => request("POST", `/api/files/${encodeURIComponent(name)}/cancel-checkout`),
  revert: (name, version, message) =>
    request("POST", `/api/files/${encodeURIComponent(name)}/revert`, { version, message }),
  requestUnlock: (name, message) =>
    request("POST", `/api/files/${encodeURIComponent(name)}/request-unlock`, { message }),
  breakLock: (name, reason) =>
    request("POST", `/api/files/${encodeURIComponent(name)}/break-lock`, { reason }),
  remove: (name) => request("DELETE", `/api/files/${encodeURIComponent(name)}`),
  checkNames: (names) => request("POST", "/api/names/check", { names }),
  changePassword: (current, next) => request("POST", "/api/auth/password", { current, new: next }),
  accounts: () => request("GET", "/api/admin/users"),
  createAccount: (username, role, password) =>
    request("POST", "/api/admin/users", { username, role, password }),
  updateAccount: (name, patch) =>
    request("PATCH", `/api/admin/users/${encodeURIComponent(name)}`, patch),
  audit: (query) => request("GET", `/api/audit?${query}`),
  createLink: (name, target, description) => request("POST", "/api/links", { name, target, description }),
  shopSettings: () => request("GET", "/api/admin/settings"),
  saveShopSettings: (patch, dryRun = false) =>
    request("PATCH", `/api/admin/settings${dryRun ? "?dry_run=true" : ""}`, patch),
  dashboard: (tz) => request("GET", `/api/dashboard?${new URLSearchParams({ tz })}`),
};

export function contentUrl(name, version) {
  const base = `/api/files/${encodeURIComponent(name)}/content`;
  return version ? `${base}?version=${version}` : base;
}

/**
 * Upload a multipart form with progress; returns {promise, abort}.
 * onProgress(loaded, total) is called as bytes leave the browser.
 */
export function uploadForm(path, fields, file, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [key, value] of Object.entries(fields)) form.append(key, value);
    form.append("file", file, file.name);
    xhr.open("POST", path);
    xhr.withCredentials = true;
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => onProgress?.(event.loaded, event.total);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else {
        const error = xhr.response?.error;
        reject(new ApiError(xhr.status, error?.code ?? "error", error?.message ?? `The server answered ${xhr.status}.`));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "offline", "The upload failed: the server cannot be reached."));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Upload cancelled."));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

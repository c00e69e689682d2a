// The REST API with the stored key. Errors carry the API's code and message so views can show them.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function createApi(getKey) {
  async function request(path, { method = "GET", body, headers = {} } = {}) {
    const init = { method, headers: { "Authorization": "Bearer " + getKey(), ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network", "the gateway cannot be reached");
    }
    if (!res.ok) {
      let code = "http_" + res.status, message = `HTTP ${res.status}`;
      try {
        const data = await res.json();
        code = data.error?.code || code;
        message = data.error?.message || message;
      } catch { /* not JSON: keep the status line */ }
      if (res.status === 401) message = "invalid key";
      throw new ApiError(res.status, code, message);
    }
    return res.status === 204 ? null : res.json();
  }

  // Media needs the Authorization header, which <img src> cannot send: fetch it and hand
  // the element an object URL (one per media id, kept while the page lives).
  const blobs = new Map();
  function mediaUrl(path) {
    if (!blobs.has(path)) {
      const pending = fetch(path, { headers: { "Authorization": "Bearer " + getKey() } }).then((res) => {
        if (!res.ok) throw new ApiError(res.status, "media", `media unavailable (HTTP ${res.status})`);
        return res.blob();
      }).then((blob) => URL.createObjectURL(blob));
      pending.catch(() => blobs.delete(path));
      blobs.set(path, pending);
    }
    return blobs.get(path);
  }

  return { request, mediaUrl };
}

export const enc = encodeURIComponent;

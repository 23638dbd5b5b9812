// The public REST/SSE API with the key from session storage (sent as a header, never in a URL).

const KEY = "mnemo.apiKey";

export const apiKey = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

function detailOf(data, res) {
  const d = data && data.detail;
  if (!d) return res.statusText || "request failed";
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
  return JSON.stringify(d);
}

function url(path, query) {
  const u = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => u.searchParams.append(k, x));
    else u.searchParams.set(k, String(v));
  }
  return u;
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${apiKey.get()}`, ...extra };
}

/** JSON in, JSON out; ApiError with the server's reason otherwise. */
export async function api(path, { method = "GET", body, query, signal } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }), signal };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(url(path, query), init);
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, detailOf(data, res));
  return data;
}

/**
 * Server-sent events over fetch (EventSource cannot send the key as a header).
 * Yields {id, event, data}; `onOpen(response)` sees the response headers first.
 */
export async function* sse(path, { method = "GET", body, query, signal, onOpen } = {}) {
  const extra = { Accept: "text/event-stream" };
  if (body !== undefined) extra["Content-Type"] = "application/json";
  const res = await fetch(url(path, query), {
    method, headers: headers(extra), body: body === undefined ? undefined : JSON.stringify(body), signal,
  });
  if (!res.ok) {
    const data = await res.json().catch(() => null);
    throw new ApiError(res.status, detailOf(data, res));
  }
  if (onOpen) onOpen(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const out = { id: "", event: "message", data: "" };
      for (const line of frame.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "data") out.data += (out.data ? "\n" : "") + val;
        else if (field === "id") out.id = val;
        else if (field === "event") out.event = val;
      }
      if (out.data) {
        try { out.data = JSON.parse(out.data); } catch { /* leave as text */ }
        yield out;
      }
    }
  }
}

/** A multipart upload with progress callbacks (bytes sent / total). */
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url(path));
    xhr.setRequestHeader("Authorization", `Bearer ${apiKey.get()}`);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new ApiError(xhr.status, detailOf(xhr.response, { statusText: xhr.statusText })));
    };
    xhr.onerror = () => reject(new ApiError(0, "network error"));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

// Calls to the server that served this page (relative URLs: the same origin, never another).
// Every answer comes back as one object, errors included, so the page always has something to show.

const HEADERS_SHOWN = [
  "x-request-id",
  "x-rerankd-served-by",
  "x-total-time",
  "x-inference-time",
  "x-queue-time",
  "retry-after",
  "x-ratelimit-remaining-requests",
  "x-ratelimit-remaining-tokens",
];

/** The message of an error body in any of the server's error shapes ({error: {message}}, {message},
 * {detail}, {error}); the raw text when the body is not JSON. */
export function errorMessage(data, text, fallback = "") {
  if (data && typeof data === "object") {
    if (data.error && typeof data.error === "object" && typeof data.error.message === "string") {
      return data.error.message;
    }
    for (const field of ["error", "message", "detail"]) {
      if (typeof data[field] === "string") return data[field];
    }
  }
  return (text || "").trim().slice(0, 1000) || fallback;
}

function errorType(data) {
  if (data && typeof data.error === "object" && data.error) return data.error.type || "";
  return (data && data.error_type) || "";
}

/**
 * One request. Resolves to {ok, status, ms, data, headers, error?}; error is
 * {message, type, retryAfter, network} and status 0 when the server could not be reached.
 */
export async function call(path, { method = "GET", body, key } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers.Authorization = `Bearer ${key}`;
  const started = performance.now();
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    const message = String((error && error.message) || error);
    return { ok: false, status: 0, ms: performance.now() - started, data: null, headers: {},
      error: { message, type: "", retryAfter: null, network: true } };
  }
  const text = await response.text();
  const ms = performance.now() - started;
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const shown = {};
  for (const name of HEADERS_SHOWN) {
    const value = response.headers.get(name);
    if (value !== null) shown[name] = value;
  }
  const result = { ok: response.ok, status: response.status, ms, data, headers: shown };
  if (!response.ok) {
    result.error = {
      message: errorMessage(data, text, response.statusText),
      type: errorType(data),
      retryAfter: shown["retry-after"] ?? null,
      network: false,
    };
  }
  return result;
}

// @ts-check
// Calls to the server that served this page (relative URLs: the same origin, never another).
// Every answer comes back as one object, errors included, so the page always has something to show.

/**
 * What went wrong with a request: the server's message and error type, its Retry-After (seconds, as sent), and
 * whether the server could not be reached at all.
 * @typedef {{message: string, type: string, retryAfter: string | null, network: boolean}} ApiError
 */

/**
 * One answer: the parsed JSON body (null when there is none or it is not JSON; any JSON value otherwise, so
 * callers say which shape they expect), the headers of HEADERS_SHOWN that came, and error when not ok.
 * @typedef {object} Answer
 * @property {boolean} ok
 * @property {number} status 0 when the server could not be reached
 * @property {number} ms
 * @property {any} data
 * @property {Record<string, string>} headers
 * @property {ApiError} [error]
 */

/**
 * The body of a /v1/rerank request, as the page sends it.
 * @typedef {object} RerankRequest
 * @property {string} model
 * @property {string} query
 * @property {string[]} documents
 * @property {number | null} [top_n] null: every document
 * @property {boolean} [return_documents]
 * @property {boolean} [return_spans]
 */

/**
 * A model as /v1/models lists it.
 * @typedef {{id: string, kind?: string, status?: string, error?: string | null}} Model
 */

/** A best window, in code points as Python counts them. @typedef {{start: number, end: number}} Span */

/**
 * One result of /v1/rerank; document is there with return_documents (a string, or an object in some dialects).
 * @typedef {{index: number, relevance_score: number, document?: unknown, span?: Span | null}} RerankResult
 */

/**
 * The body of a successful /v1/rerank answer, as far as the page reads it.
 * @typedef {object} RerankResponse
 * @property {string} [model]
 * @property {RerankResult[]} [results]
 * @property {{total_tokens?: number, query_tokens?: number, documents_tokens?: number}} [usage]
 * @property {{served_by?: string, attempts?: {model: string, ok: boolean, error?: string | null}[]}} [metadata]
 */

/**
 * @typedef {object} CallOptions
 * @property {string} [method]
 * @property {unknown} [body] sent as JSON when given
 * @property {string} [key] the API key, sent as a bearer token when not empty
 */

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
 * {detail}, {error}); the raw text when the body is not JSON.
 * @param {any} data the parsed body, any JSON value or null
 * @param {string | null | undefined} text the raw body
 * @param {string} [fallback] when neither says anything
 * @returns {string}
 */
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

/**
 * @param {any} data the parsed body
 * @returns {string}
 */
export function errorType(data) {
  if (data && typeof data.error === "object" && data.error) return data.error.type || "";
  return (data && data.error_type) || "";
}

/**
 * One request. Resolves to {ok, status, ms, data, headers, error?}; error is
 * {message, type, retryAfter, network} and status 0 when the server could not be reached.
 * @param {string} path
 * @param {CallOptions} [options]
 * @returns {Promise<Answer>}
 */
export async function call(path, { method = "GET", body, key } = {}) {
  /** @type {Record<string, string>} */
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
  } catch (/** @type {any} */ error) {
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
  /** @type {Record<string, string>} */
  const shown = {};
  for (const name of HEADERS_SHOWN) {
    const value = response.headers.get(name);
    if (value !== null) shown[name] = value;
  }
  /** @type {Answer} */
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

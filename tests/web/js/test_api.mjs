// api.js: error messages in every shape the server sends, and call() against a stand-in fetch.
import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";

import { call, errorMessage, errorType } from "../../../src/rerankd/web/static/api.js";

describe("errorMessage", () => {
  test("each of the server's error shapes", () => {
    assert.equal(errorMessage({ error: { message: "nested", type: "invalid_request" } }, ""), "nested");
    assert.equal(errorMessage({ error: "flat" }, ""), "flat");
    assert.equal(errorMessage({ message: "message field" }, ""), "message field");
    assert.equal(errorMessage({ detail: "FastAPI's detail" }, ""), "FastAPI's detail");
  });

  test("error before message before detail", () => {
    assert.equal(errorMessage({ detail: "d", message: "m", error: "e" }, ""), "e");
    assert.equal(errorMessage({ detail: "d", message: "m" }, ""), "m");
  });

  test("fields that are not strings are passed over", () => {
    assert.equal(errorMessage({ error: { message: 5 }, detail: "d" }, ""), "d");
    assert.equal(errorMessage({ detail: [{ msg: "validation" }] }, "raw body"), "raw body");
  });

  test("the raw text, trimmed and cut at 1000 characters, when the body says nothing", () => {
    assert.equal(errorMessage(null, "  Bad Gateway\n"), "Bad Gateway");
    assert.equal(errorMessage("a JSON string", "x"), "x");
    assert.equal(errorMessage(null, "y".repeat(1500)).length, 1000);
  });

  test("the fallback when there is no text either", () => {
    assert.equal(errorMessage(null, "", "Service Unavailable"), "Service Unavailable");
    assert.equal(errorMessage(null, "   ", "fallback"), "fallback");
    assert.equal(errorMessage(null, null), "");
    assert.equal(errorMessage({}, undefined, "f"), "f");
  });
});

describe("errorType", () => {
  test("from {error: {type}} or {error_type}; empty otherwise", () => {
    assert.equal(errorType({ error: { message: "m", type: "rate_limit" } }), "rate_limit");
    assert.equal(errorType({ error: { message: "m" } }), "");
    assert.equal(errorType({ error_type: "overloaded" }), "overloaded");
    assert.equal(errorType({ error: "flat" }), "");
    assert.equal(errorType(null), "");
  });
});

describe("call", () => {
  const realFetch = globalThis.fetch;
  afterEach(() => {
    globalThis.fetch = realFetch;
  });

  /** A stand-in fetch that records its requests and answers with the given Response. */
  function answering(response) {
    const requests = [];
    globalThis.fetch = async (path, init) => {
      requests.push({ path, init });
      return typeof response === "function" ? response() : response;
    };
    return requests;
  }

  test("a GET: no body, no key, same origin only, never cached", async () => {
    const requests = answering(new Response('{"data": []}', { status: 200 }));
    const answer = await call("/v1/models");
    assert.deepEqual(requests, [
      {
        path: "/v1/models",
        init: {
          method: "GET",
          headers: { Accept: "application/json" },
          body: undefined,
          credentials: "omit",
          cache: "no-store",
        },
      },
    ]);
    assert.equal(answer.ok, true);
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.data, { data: [] });
    assert.deepEqual(answer.headers, {});
    assert.equal("error" in answer, false);
    assert.ok(answer.ms >= 0);
  });

  test("a POST with a key: JSON body, bearer token; only the listed headers come back", async () => {
    const headers = {
      "X-Request-Id": "abc",
      "X-Total-Time": "12.5",
      "X-Other": "hidden",
      "Content-Type": "application/json",
    };
    const requests = answering(new Response('{"results": []}', { status: 200, headers }));
    const answer = await call("/v1/rerank", { method: "POST", body: { query: "q" }, key: "sk-1" });
    assert.deepEqual(requests[0].init.headers, {
      Accept: "application/json",
      "Content-Type": "application/json",
      Authorization: "Bearer sk-1",
    });
    assert.equal(requests[0].init.body, '{"query":"q"}');
    assert.deepEqual(answer.headers, { "x-request-id": "abc", "x-total-time": "12.5" });
  });

  test("an HTTP error: the server's message and type, Retry-After as sent", async () => {
    const body = JSON.stringify({ error: { message: "slow down", type: "rate_limit_exceeded" } });
    answering(new Response(body, { status: 429, statusText: "Too Many Requests", headers: { "Retry-After": "3" } }));
    const answer = await call("/v1/rerank", { method: "POST", body: {} });
    assert.equal(answer.ok, false);
    assert.equal(answer.status, 429);
    assert.deepEqual(answer.error, {
      message: "slow down",
      type: "rate_limit_exceeded",
      retryAfter: "3",
      network: false,
    });
  });

  test("a body that is not JSON: data null, the text as the message, else the status text", async () => {
    answering(new Response("upstream timed out", { status: 504, statusText: "Gateway Timeout" }));
    let answer = await call("/v1/rerank");
    assert.equal(answer.data, null);
    assert.deepEqual(answer.error, { message: "upstream timed out", type: "", retryAfter: null, network: false });

    answering(new Response("", { status: 502, statusText: "Bad Gateway" }));
    answer = await call("/v1/rerank");
    assert.equal(answer.data, null);
    assert.equal(answer.error.message, "Bad Gateway");
  });

  test("an unreachable server: status 0, a network error, never a throw", async () => {
    answering(() => {
      throw new TypeError("Failed to fetch");
    });
    const answer = await call("/v1/models", { key: "k" });
    assert.equal(answer.ok, false);
    assert.equal(answer.status, 0);
    assert.equal(answer.data, null);
    assert.deepEqual(answer.headers, {});
    assert.deepEqual(answer.error, { message: "Failed to fetch", type: "", retryAfter: null, network: true });
  });
});

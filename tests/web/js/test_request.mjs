// request.js: the Rerank request the form describes and what keeps it from being sent.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { formProblem, parseTopN, rerankRequest } from "../../../src/rerankd/web/static/request.js";

describe("parseTopN", () => {
  test("empty (or blank) is every document", () => {
    assert.deepEqual(parseTopN(""), { value: null });
    assert.deepEqual(parseTopN("   "), { value: null });
  });

  test("a whole number of 1 or more, white space around it allowed", () => {
    assert.deepEqual(parseTopN("1"), { value: 1 });
    assert.deepEqual(parseTopN(" 10 "), { value: 10 });
    assert.deepEqual(parseTopN("3.0"), { value: 3 }); // Number("3.0") is the integer 3
  });

  test("anything else is an error", () => {
    for (const text of ["0", "-1", "2.5", "abc", "1e400", "Infinity", "NaN", "3 4"]) {
      assert.deepEqual(parseTopN(text), { error: "badTopN" }, text);
    }
  });
});

describe("rerankRequest", () => {
  test("the query trimmed, one document per non-empty line, spans and documents asked for", () => {
    const values = { query: "  capital?  ", documents: "a\n\n  b  \r\nc", topN: " 2 " };
    assert.deepEqual(rerankRequest("minilm", values), {
      model: "minilm",
      query: "capital?",
      documents: ["a", "b", "c"],
      top_n: 2,
      return_documents: true,
      return_spans: true,
    });
  });

  test("top_n is null when empty or invalid (formProblem stops an invalid one first)", () => {
    assert.equal(rerankRequest("m", { query: "q", documents: "d", topN: "" }).top_n, null);
    assert.equal(rerankRequest("m", { query: "q", documents: "d", topN: "zero" }).top_n, null);
  });
});

describe("formProblem", () => {
  const ok = { query: "q", documents: "d", topN: "" };

  test("null when the form can be sent", () => {
    assert.equal(formProblem(ok, 1), null);
    assert.equal(formProblem({ ...ok, topN: "5" }, 3), null);
  });

  test("each problem names its message and the field to focus", () => {
    assert.deepEqual(formProblem({ ...ok, query: " \t " }, 1), { key: "needQuery", field: "query" });
    assert.deepEqual(formProblem({ ...ok, documents: "\n  \n" }, 1), { key: "needDocuments", field: "documents" });
    assert.deepEqual(formProblem(ok, 0), { key: "needModel", field: "models" });
    assert.deepEqual(formProblem({ ...ok, topN: "-3" }, 1), { key: "badTopN", field: "top-n" });
  });

  test("the first problem in the order of the fields wins", () => {
    assert.deepEqual(formProblem({ query: "", documents: "", topN: "x" }, 0), { key: "needQuery", field: "query" });
    assert.deepEqual(formProblem({ query: "q", documents: "", topN: "x" }, 0).field, "documents");
    assert.deepEqual(formProblem({ query: "q", documents: "d", topN: "x" }, 0).field, "models");
  });
});

// documents.js: documents from the text box (one per line) and from .txt / .jsonl files.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { linesOf, parseFile, parseJsonl } from "../../../src/rerankd/web/static/documents.js";

describe("linesOf", () => {
  test("one document per non-empty line, trimmed, \\n or \\r\\n", () => {
    assert.deepEqual(linesOf("  first \r\nsecond\n\n   \n\tthird\t\n"), ["first", "second", "third"]);
  });

  test("nothing but blank lines is no document", () => {
    assert.deepEqual(linesOf(""), []);
    assert.deepEqual(linesOf(" \n\r\n\t"), []);
  });

  test("a lone \\r is not a line break", () => {
    assert.deepEqual(linesOf("a\rb"), ["a\rb"]);
  });
});

describe("parseJsonl", () => {
  test("strings and objects with a text field; other fields are ignored", () => {
    const text = '"plain string"\n{"text": "from an object", "id": 7}\n{"id": 1, "text": "\\u4e2d\\u6587"}\n';
    assert.deepEqual(parseJsonl(text), { documents: ["plain string", "from an object", "中文"] });
  });

  test("blank lines are skipped, \\r\\n endings accepted", () => {
    assert.deepEqual(parseJsonl('\r\n"a"\r\n   \r\n"b"\r\n'), { documents: ["a", "b"] });
  });

  test("line breaks inside a text become one space, so that the text box keeps one document a line", () => {
    assert.deepEqual(parseJsonl('"one\\ntwo"\n{"text": "  three  \\r\\n   four \\n\\n five "}'), {
      documents: ["one two", "three four five"],
    });
  });

  test("a text that is empty or only white space is dropped, not an error", () => {
    assert.deepEqual(parseJsonl('""\n{"text": " \\n "}\n"kept"'), { documents: ["kept"] });
  });

  test("the first line that is not JSON is reported, 1-based, counting blank lines", () => {
    assert.deepEqual(parseJsonl('"a"\n\n{"text": "b"}\n{text: "c"}\n"d"\nnot json either'), { error: { line: 4 } });
    assert.deepEqual(parseJsonl("{"), { error: { line: 1 } });
    assert.deepEqual(parseJsonl('"a"\r\n\r\n\'single quotes\''), { error: { line: 3 } });
  });

  test("JSON that is not a document is reported with its line", () => {
    for (const [value, line] of [
      ['"a"\n42', 2],
      ['"a"\nnull', 2],
      ["true", 1],
      ['["a list"]', 1],
      ['{"title": "no text field"}', 1],
      ['"a"\n"b"\n{"text": 3}', 3],
      ['{"text": null}', 1],
      ['{"text": {"nested": "x"}}', 1],
    ]) {
      assert.deepEqual(parseJsonl(value), { error: { line } }, value);
    }
  });

  test("an empty file has no documents", () => {
    assert.deepEqual(parseJsonl(""), { documents: [] });
    assert.deepEqual(parseJsonl("\n\n"), { documents: [] });
  });
});

describe("parseFile", () => {
  test(".jsonl, in any case, is read as JSON lines", () => {
    assert.deepEqual(parseFile("docs.jsonl", '"a"\n{"text": "b"}'), { documents: ["a", "b"] });
    assert.deepEqual(parseFile("DOCS.JSONL", "oops"), { error: { line: 1 } });
  });

  test("anything else is one document per line, JSON or not", () => {
    assert.deepEqual(parseFile("docs.txt", '"a"\n{"text": "b"}\n\n'), { documents: ['"a"', '{"text": "b"}'] });
    assert.deepEqual(parseFile("docs.json", "x\ny"), { documents: ["x", "y"] });
    assert.deepEqual(parseFile("docs.jsonl.txt", "{"), { documents: ["{"] });
  });
});

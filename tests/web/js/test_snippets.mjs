// snippets.js: "View code". Besides their text, the snippets are checked the way they will be used: the curl
// payload is unquoted by sh, the Python literals are read back by Python, the fetch code is parsed as JavaScript.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";

import { pythonLiteral, shellQuote, snippets } from "../../../src/rerankd/web/static/snippets.js";

const AWKWARD = `it's "quoted" \\ back\\slash $HOME \`tick\` 中文 😀 tab\there\nnew line`;
const BODY = {
  model: "minilm-l6",
  query: AWKWARD,
  documents: ["plain", "O'Reilly & \"sons\"", "line\u2028separator"],
  top_n: 2,
  return_documents: true,
  return_spans: true,
};
const URL_ = "http://127.0.0.1:8000";

const python = spawnSync("python3", ["--version"]).status === 0 ? "python3" : null;

/**
 * Python parses the code and reads back the arguments of its call to .method(): its positional ones and its
 * keywords, each a literal.
 */
function pythonCall(code, method) {
  const source = [
    "import ast, json, sys",
    "tree = ast.parse(sys.argv[1])",
    "call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'attr', '') == sys.argv[2])",
    "args = [ast.literal_eval(arg) for arg in call.args]",
    "keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg != 'headers'}",
    "print(json.dumps({'args': args, 'keywords': keywords}))",
  ].join("\n");
  const result = spawnSync(python, ["-c", source, code, method], { encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout);
}

describe("pythonLiteral", () => {
  test("scalars", () => {
    assert.equal(pythonLiteral(null), "None");
    assert.equal(pythonLiteral(undefined), "None");
    assert.equal(pythonLiteral(true), "True");
    assert.equal(pythonLiteral(false), "False");
    assert.equal(pythonLiteral(0), "0");
    assert.equal(pythonLiteral(-2.5), "-2.5");
    assert.equal(pythonLiteral('say "hi"'), '"say \\"hi\\""');
  });

  test("lists and dicts: one item a line, four spaces a level, a trailing comma; empty ones inline", () => {
    assert.equal(pythonLiteral([]), "[]");
    assert.equal(pythonLiteral({}), "{}");
    assert.equal(pythonLiteral([1, "a"]), '[\n    1,\n    "a",\n]');
    assert.equal(
      pythonLiteral({ a: [true, null], b: {} }),
      '{\n    "a": [\n        True,\n        None,\n    ],\n    "b": {},\n}',
    );
    assert.equal(pythonLiteral(["x"], 1), '[\n        "x",\n    ]');
  });

  test("Python reads every literal back as the same value", { skip: !python && "no python3" }, () => {
    const nested = [[], {}, [{ "key with 'quote'": [null, false, 1e-7, 12345678901234] }]];
    const values = [BODY, AWKWARD, nested, "\u0000\u001f"];
    for (const value of values) {
      const source = `import ast, json, sys\nvalue = ast.literal_eval(sys.argv[1])\nprint(json.dumps(value))`;
      const result = spawnSync(python, ["-c", source, pythonLiteral(value)], { encoding: "utf8" });
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(JSON.parse(result.stdout), value);
    }
  });
});

describe("shellQuote", () => {
  test("single quotes, each ' closed, escaped and reopened", () => {
    assert.equal(shellQuote("plain"), "'plain'");
    assert.equal(shellQuote(""), "''");
    assert.equal(shellQuote("it's"), "'it'\\''s'");
    assert.equal(shellQuote("''"), "''\\'''\\'''");
  });

  test("sh gives back the text as it was", () => {
    for (const text of [AWKWARD, "'", "''", "a'b'c", "$(touch /tmp/never) ; `x` \\n", JSON.stringify(BODY, null, 2)]) {
      const result = spawnSync("sh", ["-c", `printf '%s' ${shellQuote(text)}`], { encoding: "utf8" });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, text);
    }
  });
});

describe("snippets", () => {
  test("one of each", () => {
    assert.deepEqual(Object.keys(snippets(URL_, BODY, false)), ["curl", "httpx", "cohere", "fetch"]);
  });

  test("curl: the endpoint, the key from the environment only when needed, the body as JSON", () => {
    const open = snippets(URL_, BODY, false).curl;
    const keyed = snippets(URL_, BODY, true).curl;
    const head = "curl -s http://127.0.0.1:8000/v1/rerank \\\n  -H 'Content-Type: application/json' \\\n  -d '";
    assert.ok(open.startsWith(head), open);
    assert.ok(!open.includes("Authorization"));
    assert.ok(keyed.includes(' \\\n  -H "Authorization: Bearer $RERANKD_API_KEY" \\\n  -d \''));
    // What curl receives as -d once sh has read the command line: the body, intact.
    const command = open.replace(/^curl -s \S+ \\\n {2}-H '[^']*' \\\n {2}-d /, "printf '%s' ");
    assert.ok(command.startsWith("printf '%s' '"), command); // never curl itself
    const printed = spawnSync("sh", ["-c", command], { encoding: "utf8" });
    assert.equal(printed.status, 0, printed.stderr);
    assert.deepEqual(JSON.parse(printed.stdout), BODY);
  });

  test("httpx: a valid Python program with the body as a literal, the key read from the environment", {
    skip: !python && "no python3",
  }, () => {
    for (const keyed of [false, true]) {
      const code = snippets(URL_, BODY, keyed).httpx;
      assert.equal(code.includes("RERANKD_API_KEY"), keyed);
      assert.equal(code.startsWith("import os\n"), keyed);
      assert.deepEqual(pythonCall(code, "post"), {
        args: [`${URL_}/v1/rerank`],
        keywords: { json: BODY, timeout: 60 },
      });
    }
  });

  test("cohere: ClientV2 on this server, top_n only when set, a key always (the SDK wants one)", () => {
    const code = snippets(URL_, BODY, false).cohere;
    const client = 'co = cohere.ClientV2(api_key=os.environ.get("RERANKD_API_KEY", "none"), base_url="http://127.0.0.1:8000")';
    assert.ok(code.includes(client), code);
    assert.ok(code.includes('    model="minilm-l6",\n'));
    assert.ok(code.includes(`    query=${JSON.stringify(AWKWARD)},\n`));
    assert.ok(code.includes("    top_n=2,\n"));
    assert.ok(code.includes('    documents=[\n        "plain",\n'));
    for (const top_n of [null, undefined]) {
      assert.ok(!snippets(URL_, { ...BODY, top_n }, false).cohere.includes("top_n"));
    }
    assert.equal(snippets(URL_, BODY, true).cohere, code); // the same code with a key or without
  });

  test("cohere: the arguments are Python", { skip: !python && "no python3" }, () => {
    const code = snippets(URL_, BODY, false).cohere;
    assert.deepEqual(pythonCall(code, "rerank"), {
      args: [],
      keywords: { model: BODY.model, query: BODY.query, documents: BODY.documents, top_n: 2 },
    });
  });

  test("fetch: valid JavaScript that posts the body as JSON, the key from the environment when needed", () => {
    const AsyncFunction = (async () => {}).constructor;
    for (const keyed of [false, true]) {
      const code = snippets(URL_, BODY, keyed).fetch;
      assert.doesNotThrow(() => new AsyncFunction(code), code); // parsed, not run
      assert.equal(code.includes("Authorization: `Bearer ${process.env.RERANKD_API_KEY}`"), keyed);
      const json = code.slice(code.indexOf("JSON.stringify(") + "JSON.stringify(".length, code.lastIndexOf("),\n});"));
      assert.deepEqual(JSON.parse(json), BODY);
      assert.ok(json.includes('\n    "model": "minilm-l6",\n'), "the body is indented under its key");
    }
  });
});

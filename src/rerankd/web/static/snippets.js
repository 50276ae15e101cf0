// @ts-check
// "View code": the current request as curl, Python (httpx, the cohere SDK) and JavaScript fetch.
// The key never appears in the code: it is read from the RERANKD_API_KEY environment variable.

/** @typedef {import("./api.js").RerankRequest} RerankRequest */
/**
 * A JSON value (undefined is written as None too).
 * @typedef {null | undefined | boolean | number | string | Json[] | {[key: string]: Json}} Json
 */
/**
 * The code of one request, by language.
 * @typedef {{curl: string, httpx: string, cohere: string, fetch: string}} Snippets
 */

/**
 * A Python literal of a JSON value (JSON string escapes are valid in Python strings), indented by four spaces a
 * level, lists and dicts one item a line with a trailing comma; depth is the level it starts at.
 * @param {Json} value
 * @param {number} [depth]
 * @returns {string}
 */
export function pythonLiteral(value, depth = 0) {
  const pad = "    ".repeat(depth + 1);
  const end = "    ".repeat(depth);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number" || typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return `[\n${value.map((item) => pad + pythonLiteral(item, depth + 1)).join(",\n")},\n${end}]`;
  }
  const entries = Object.entries(value);
  if (entries.length === 0) return "{}";
  const items = entries.map(([key, item]) => `${pad}${JSON.stringify(key)}: ${pythonLiteral(item, depth + 1)}`);
  return `{\n${items.join(",\n")},\n${end}}`;
}

/**
 * @param {string} text
 * @param {number} spaces
 * @returns {string}
 */
function indentAfterFirst(text, spaces) {
  return text.replace(/\n/g, "\n" + " ".repeat(spaces));
}

/**
 * A single-quoted shell word: each ' becomes '\'' (close, an escaped quote, reopen).
 * @param {string} text
 * @returns {string}
 */
export function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

/**
 * @param {string} url
 * @param {RerankRequest} body
 * @param {boolean} keyed
 * @returns {string}
 */
function curl(url, body, keyed) {
  const lines = [`curl -s ${url}/v1/rerank`, "-H 'Content-Type: application/json'"];
  if (keyed) lines.push('-H "Authorization: Bearer $RERANKD_API_KEY"');
  lines.push(`-d ${shellQuote(JSON.stringify(body, null, 2))}`);
  return lines.join(" \\\n  ");
}

/**
 * @param {string} url
 * @param {RerankRequest} body
 * @param {boolean} keyed
 * @returns {string}
 */
function httpx(url, body, keyed) {
  const headers = keyed ? '    headers={"Authorization": "Bearer " + os.environ["RERANKD_API_KEY"]},\n' : "";
  return (
    (keyed ? "import os\n\n" : "") +
    "import httpx\n\n" +
    "response = httpx.post(\n" +
    `    ${JSON.stringify(url + "/v1/rerank")},\n` +
    headers +
    `    json=${pythonLiteral(body, 1)},\n` +
    "    timeout=60,\n" +
    ")\n" +
    "response.raise_for_status()\n" +
    'for result in response.json()["results"]:\n' +
    '    print(result["index"], result["relevance_score"])\n'
  );
}

/**
 * @param {string} url
 * @param {RerankRequest} body
 * @returns {string}
 */
function cohere(url, body) {
  // The SDK's ClientV2 posts to {base_url}/v2/rerank (Cohere's v2 format, which rerankd speaks) and
  // wants a key even where the server needs none.
  const args = [
    `    model=${JSON.stringify(body.model)},`,
    `    query=${JSON.stringify(body.query)},`,
    `    documents=${pythonLiteral(body.documents, 1)},`,
  ];
  if (body.top_n !== null && body.top_n !== undefined) args.push(`    top_n=${body.top_n},`);
  return (
    "import os\n\nimport cohere\n\n" +
    `co = cohere.ClientV2(api_key=os.environ.get("RERANKD_API_KEY", "none"), base_url=${JSON.stringify(url)})\n` +
    `response = co.rerank(\n${args.join("\n")}\n)\n` +
    "for result in response.results:\n" +
    "    print(result.index, result.relevance_score)\n"
  );
}

/**
 * @param {string} url
 * @param {RerankRequest} body
 * @param {boolean} keyed
 * @returns {string}
 */
function fetchCode(url, body, keyed) {
  const headers = ['    "Content-Type": "application/json",'];
  if (keyed) headers.push("    Authorization: `Bearer ${process.env.RERANKD_API_KEY}`,");
  return (
    `const response = await fetch(${JSON.stringify(url + "/v1/rerank")}, {\n` +
    '  method: "POST",\n' +
    `  headers: {\n${headers.join("\n")}\n  },\n` +
    `  body: JSON.stringify(${indentAfterFirst(JSON.stringify(body, null, 2), 2)}),\n` +
    "});\n" +
    "const data = await response.json();\n" +
    "if (!response.ok) throw new Error(data.error.message);\n" +
    "for (const result of data.results) console.log(result.index, result.relevance_score);\n"
  );
}

/**
 * Every snippet of one request; url is the server's origin, keyed whether it needs a key.
 * @param {string} url
 * @param {RerankRequest} body
 * @param {boolean} keyed
 * @returns {Snippets}
 */
export function snippets(url, body, keyed) {
  return {
    curl: curl(url, body, keyed),
    httpx: httpx(url, body, keyed),
    cohere: cohere(url, body),
    fetch: fetchCode(url, body, keyed),
  };
}

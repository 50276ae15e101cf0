// @ts-check
// Documents from the text box (one per line) or from a file: .txt one per line, .jsonl one JSON value per
// line (a string or an object with a "text" field).

/** @typedef {{documents: string[], error?: undefined} | {error: {line: number}, documents?: undefined}} Parsed */

/**
 * The non-empty lines of a text, trimmed: one document each.
 * @param {string} text
 * @returns {string[]}
 */
export function linesOf(text) {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
}

/** {documents} or {error: {line}} (1-based) for the first line that is not a document. Line breaks inside
 * a text become spaces, so that the text box keeps one document per line.
 * @param {string} text
 * @returns {Parsed}
 */
export function parseJsonl(text) {
  /** @type {string[]} */
  const documents = [];
  const lines = text.split(/\r?\n/);
  for (let number = 1; number <= lines.length; number++) {
    const line = lines[number - 1].trim();
    if (line === "") continue;
    /** @type {unknown} */
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      return { error: { line: number } };
    }
    const document = typeof value === "string" ? value : textField(value);
    if (document === null) return { error: { line: number } };
    const flat = document.replace(/\s*\r?\n\s*/g, " ").trim();
    if (flat !== "") documents.push(flat);
  }
  return { documents };
}

/**
 * The "text" field of a parsed JSON value, null where it has none that is a string.
 * @param {unknown} value
 * @returns {string | null}
 */
function textField(value) {
  if (!value || typeof value !== "object" || !("text" in value)) return null;
  return typeof value.text === "string" ? value.text : null;
}

/**
 * The documents of a loaded file: JSON lines for a .jsonl name (any case), one per line otherwise.
 * @param {string} name
 * @param {string} text
 * @returns {Parsed}
 */
export function parseFile(name, text) {
  return /\.jsonl$/i.test(name) ? parseJsonl(text) : { documents: linesOf(text) };
}

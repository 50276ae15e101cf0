// Documents from the text box (one per line) or from a file: .txt one per line, .jsonl one JSON value per
// line (a string or an object with a "text" field).

export function linesOf(text) {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
}

/** {documents} or {error: {line}} (1-based) for the first line that is not a document. Line breaks inside
 * a text become spaces, so that the text box keeps one document per line. */
export function parseJsonl(text) {
  const documents = [];
  const lines = text.split(/\r?\n/);
  for (let number = 1; number <= lines.length; number++) {
    const line = lines[number - 1].trim();
    if (line === "") continue;
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      return { error: { line: number } };
    }
    const document = typeof value === "string" ? value : value && typeof value.text === "string" ? value.text : null;
    if (document === null) return { error: { line: number } };
    const flat = document.replace(/\s*\r?\n\s*/g, " ").trim();
    if (flat !== "") documents.push(flat);
  }
  return { documents };
}

export function parseFile(name, text) {
  return /\.jsonl$/i.test(name) ? parseJsonl(text) : { documents: linesOf(text) };
}

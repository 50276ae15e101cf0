// @ts-check
// The console's pure parts, with no DOM: how values are shown, the keys table's filter and sort, the days of
// a period, a chart's scale, and the CSV a key holder downloads. tests/web/js/test_console.mjs runs them.

/**
 * A managed key as GET /admin/keys lists it (money as exact decimal text).
 * @typedef {object} Key
 * @property {number} id
 * @property {string} name
 * @property {string} prefix
 * @property {"active" | "disabled" | "revoked" | "expired"} state
 * @property {string[] | null} models
 * @property {string | null} budget
 * @property {string} spent
 * @property {string} reserved
 * @property {string | null} remaining
 * @property {number | null} rpm
 * @property {number | null} tpm
 * @property {string | null} expires_at
 * @property {boolean} disabled
 * @property {string | null} revoked_at
 * @property {string} created_at
 * @property {string | null} [last_used_at]
 */

/**
 * Calls of one group (a key, a model, a day) and their sums, as the usage answers carry them.
 * @typedef {object} Totals
 * @property {string} [group]
 * @property {number} calls
 * @property {number} errors
 * @property {number} documents
 * @property {number} query_tokens
 * @property {number} documents_tokens
 * @property {number} total_tokens
 * @property {number} search_units
 * @property {string} cost
 */

/** A day of a chart: the day (YYYY-MM-DD, UTC) and its calls, tokens and cost.
 * @typedef {{day: string, calls: number, tokens: number, cost: number}} Day */

/** Where a chart's axis ends and its ticks: max is step * the number of steps, at least the data's max.
 * @typedef {{max: number, step: number, ticks: number[]}} Scale */

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * A count with the language's digit grouping (12,345 or 12,345 in Chinese too); "—" for none.
 * @param {number | null | undefined} value
 * @param {string} [language]
 * @returns {string}
 */
export function formatCount(value, language = "en") {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return new Intl.NumberFormat(language === "zh" ? "zh-CN" : "en-US").format(value);
}

/**
 * An amount as the server sent it (exact decimal text, never rounded here), with its integer part grouped.
 * @param {string | null | undefined} amount
 * @returns {string}
 */
export function formatMoney(amount) {
  if (amount === null || amount === undefined || amount === "") return "—";
  const [whole, fraction] = String(amount).split(".");
  const sign = whole.startsWith("-") ? "-" : "";
  const digits = whole.replace("-", "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return sign + digits + (fraction ? `.${fraction}` : "");
}

/**
 * A time of the API (ISO 8601) in UTC to the minute, "2027-01-01 12:00 UTC"; "—" for none.
 * @param {string | null | undefined} iso
 * @returns {string}
 */
export function formatTime(iso) {
  if (!iso) return "—";
  const time = new Date(iso);
  if (Number.isNaN(time.getTime())) return iso;
  return `${time.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/**
 * Milliseconds, rounded to what matters: 0.42 ms, 12.3 ms, 1,234 ms; "—" for none.
 * @param {number | null | undefined} ms
 * @returns {string}
 */
export function formatMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${formatCount(Math.round(ms))} ms`;
}

/**
 * A share as a percentage with one decimal ("2.5%"); "—" for none.
 * @param {number | null | undefined} rate from 0 to 1
 * @returns {string}
 */
export function formatRate(rate) {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return "—";
  return `${(rate * 100).toFixed(1)}%`;
}

// -- the keys table ------------------------------------------------------------------------------------

/**
 * The keys whose name or prefix holds text (any case), in the state asked ("" for any).
 * @param {readonly Key[]} keys
 * @param {string} text
 * @param {string} state
 * @returns {Key[]}
 */
export function filterKeys(keys, text, state) {
  const needle = text.trim().toLowerCase();
  return keys.filter(
    (key) =>
      (!state || key.state === state) &&
      (!needle || key.name.toLowerCase().includes(needle) || key.prefix.toLowerCase().includes(needle)),
  );
}

/** The keys table's columns that sort, and how each is read: text, number (money too) or time. */
export const SORTS = /** @type {const} */ ({
  name: "text",
  prefix: "text",
  state: "text",
  models: "text",
  budget: "number",
  spent: "number",
  reserved: "number",
  remaining: "number",
  rpm: "number",
  tpm: "number",
  expires_at: "time",
  last_used_at: "time",
});

/**
 * The keys sorted by a column, up or down; keys without a value (an unlimited budget, never used) go last
 * either way, and ties keep their order (by id).
 * @param {readonly Key[]} keys
 * @param {keyof typeof SORTS} column
 * @param {"ascending" | "descending"} direction
 * @returns {Key[]}
 */
export function sortKeys(keys, column, direction) {
  const kind = SORTS[column];
  /** @param {Key} key @returns {string | number | null} */
  const valueOf = (key) => {
    const value = key[column];
    if (value === null || value === undefined) return null;
    if (Array.isArray(value)) return value.join(", ").toLowerCase();
    if (kind === "number") return Number(value);
    if (kind === "time") return new Date(String(value)).getTime();
    return String(value).toLowerCase();
  };
  const sign = direction === "ascending" ? 1 : -1;
  return [...keys].sort((a, b) => {
    const x = valueOf(a);
    const y = valueOf(b);
    if (x === null || y === null) return x === y ? a.id - b.id : x === null ? 1 : -1;
    if (x < y) return -sign;
    if (x > y) return sign;
    return a.id - b.id;
  });
}

// -- periods and charts --------------------------------------------------------------------------------

/**
 * A date (YYYY-MM-DD) moved by some days.
 * @param {string} day
 * @param {number} days
 * @returns {string}
 */
export function addDays(day, days) {
  return new Date(Date.parse(`${day}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
}

/**
 * Every day from first to last (both included, YYYY-MM-DD, UTC), with each day's totals from the groups of
 * a usage report by day; a day without calls is there with zeros, so that the chart shows the gap. At most
 * limit days (the last ones).
 * @param {readonly Totals[]} groups
 * @param {string} first
 * @param {string} last
 * @param {number} [limit]
 * @returns {Day[]}
 */
export function dailySeries(groups, first, last, limit = 400) {
  /** @type {Map<string, Totals>} */
  const byDay = new Map(groups.map((group) => [String(group.group).slice(0, 10), group]));
  /** @type {Day[]} */
  const days = [];
  for (let day = first; day <= last; day = addDays(day, 1)) {
    const found = byDay.get(day);
    days.push({
      day,
      calls: found ? found.calls : 0,
      tokens: found ? found.total_tokens : 0,
      cost: found ? Number(found.cost) : 0,
    });
  }
  return days.slice(-limit);
}

/**
 * A chart's axis for values up to max: ticks steps of 1, 2 or 5 times a power of ten (about ticks of them),
 * from 0 to the first tick at or above max. An axis of nothing (max 0) still goes to 1.
 * @param {number} max
 * @param {number} [ticks]
 * @returns {Scale}
 */
export function niceScale(max, ticks = 4) {
  const top = max > 0 && Number.isFinite(max) ? max : 1;
  const rough = top / ticks;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= rough) ?? 10 * power;
  const count = Math.max(1, Math.ceil(top / step - 1e-9));
  // Computed as integers of the step and rounded to its digits, so 0.1 * 3 shows as 0.3.
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  const values = Array.from({ length: count + 1 }, (_, index) => Number((index * step).toFixed(digits)));
  return { max: values[values.length - 1], step, ticks: values };
}

/**
 * A bar's height in a chart of height px for a scale.
 * @param {number} value
 * @param {Scale} scale
 * @param {number} height
 * @returns {number}
 */
export function barHeight(value, scale, height) {
  if (!(value > 0)) return 0;
  return Math.min(height, (value / scale.max) * height);
}

// -- CSV -----------------------------------------------------------------------------------------------

const FORMULA_STARTS = ["=", "+", "-", "@", "\t", "\r"];

/**
 * One CSV cell as the server's exports write it: numbers as they are, text that a spreadsheet would run as
 * a formula with a ' in front, quoted when it holds a comma, a quote or a line end.
 * @param {unknown} value
 * @returns {string}
 */
export function csvCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return String(value);
  let text = String(value);
  if (FORMULA_STARTS.some((start) => text.startsWith(start))) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * A CSV table (RFC 4180: CRLF line ends): the header, then one line per row, each row's cells in the
 * header's order.
 * @param {readonly string[]} header
 * @param {readonly Record<string, unknown>[]} rows
 * @returns {string}
 */
export function csvOf(header, rows) {
  const line = (/** @type {readonly unknown[]} */ cells) => `${cells.map(csvCell).join(",")}\r\n`;
  return line(header) + rows.map((row) => line(header.map((name) => row[name]))).join("");
}

/**
 * The file name a Content-Disposition header gives (attachment; filename="..."), else the fallback.
 * @param {string | null | undefined} header
 * @param {string} fallback
 * @returns {string}
 */
export function fileNameOf(header, fallback) {
  const match = /filename="([^"]+)"/.exec(header || "");
  const name = match ? match[1] : "";
  return /^[\w.-]+$/.test(name) ? name : fallback;
}

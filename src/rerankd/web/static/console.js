// @ts-check
// The console: sign in with a key (kept in sessionStorage: this tab only), then, with an admin key, manage the
// keys, read the usage and watch the models through the admin API; with a client key, read its own usage
// (GET /v1/usage). Every answer is shown as the server gave it: refusals and errors in the server's words.

import { call } from "./api.js";
import { renderChart } from "./console-chart.js";
import {
  SORTS,
  addDays,
  csvOf,
  dailySeries,
  fileNameOf,
  filterKeys,
  formatCount,
  formatMoney,
  formatMs,
  formatRate,
  formatTime,
  sortKeys,
} from "./console-format.js";
import "./console-i18n.js";
import { currentLanguage, preferredLanguage, setLanguage, t } from "./i18n.js";
import { el } from "./render.js";

/** @typedef {import("./api.js").Answer} Answer */
/** @typedef {import("./console-format.js").Key} Key */
/** @typedef {import("./console-format.js").Totals} Totals */
/** @typedef {{key: string, values?: Record<string, unknown>, bad?: boolean}} Message */
/** @typedef {"keys" | "usage" | "models" | "mine"} Tab */
/** @typedef {keyof typeof SORTS} SortColumn */
/**
 * The key form's fields as typed, to send only what was changed.
 * @typedef {{name: string, models: string, budget: string, rpm: string, tpm: string, expires: string}} KeyFields
 */

const KEY_STORAGE = "rerankd.console.key";
const LANGUAGE_STORAGE = "rerankd.playground.language"; // one choice for both pages
/** @type {Tab[]} */
const TABS = ["keys", "usage", "models", "mine"];
const KEY_COLUMNS = /** @type {SortColumn[]} */ (Object.keys(SORTS));
/** @type {Record<"ascending" | "descending", "ascending" | "descending">} */
const OTHER_WAY = { ascending: "descending", descending: "ascending" }; // a second click on a column
const MONEY = new Set(["budget", "spent", "reserved", "remaining"]);
const TOTAL_COLUMNS = ["calls", "errors", "documents", "total_tokens", "search_units", "cost"];
const TOTAL_WORDS = /** @type {Record<string, string>} */ ({
  calls: "calls",
  errors: "errors",
  documents: "documents",
  total_tokens: "tokens",
  search_units: "col_search_units",
  cost: "cost",
});

/**
 * The element with this id: the page has every id the script asks for.
 * @param {string} id
 * @returns {any}
 */
const $ = (id) => document.getElementById(id);

/**
 * @typedef {object} State
 * @property {string} key
 * @property {"admin" | "holder" | null} role
 * @property {Message | null} who
 * @property {Message | null} notice
 * @property {Tab} tab
 * @property {Answer | null} keys GET /admin/keys
 * @property {SortColumn | null} sort
 * @property {"ascending" | "descending"} direction
 * @property {{mode: "create" | "edit", key: Key | null, initial: KeyFields} | null} form
 * @property {Message | null} formError
 * @property {{name: string, key: string} | null} created
 * @property {{day: Answer, key: Answer, model: Answer, from: string, to: string} | null} usage
 * @property {Answer | null} usageChoices GET /admin/keys for the usage tab's key choice
 * @property {Answer | null} models GET /admin/models
 * @property {Answer | null} mine GET /v1/usage
 */

/** @type {State} */
const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  role: null,
  who: null,
  notice: null,
  tab: "keys",
  keys: null,
  sort: null,
  direction: "ascending",
  form: null,
  formError: null,
  created: null,
  usage: null,
  usageChoices: null,
  models: null,
  mine: null,
};

/** @param {string} path */
const get = (path) => call(path, { key: state.key });

/**
 * @param {Message | null} message
 * @returns {string}
 */
const say = (message) => (message ? t(message.key, message.values) : "");

/** @returns {string} today, UTC */
const today = () => new Date().toISOString().slice(0, 10);

/**
 * The server's words for an answer that is not ok: its status, error type and message.
 * @param {Answer} answer
 * @returns {Message}
 */
function serverWords(answer) {
  const error = answer.error || { message: "", type: "", network: false };
  if (error.network) return { key: "networkError", values: { message: error.message }, bad: true };
  const values = { status: answer.status, type: error.type, message: error.message };
  return { key: error.type ? "serverSaid" : "serverSaidPlain", values, bad: true };
}

/** @param {number | null | undefined} value */
const count = (value) => formatCount(value, currentLanguage());

// -- panels: refused or shown ----------------------------------------------------------------------------

/**
 * Show a tab's panel as refused (the server's words, and which key the tab needs) or as granted.
 * @param {Tab} tab
 * @param {Answer | null} answer
 * @returns {boolean} whether the answer is there to show
 */
function showGate(tab, answer) {
  const panel = $(`panel-${tab}`);
  const refused = panel.querySelector(".refused");
  const granted = panel.querySelector(".granted");
  const failed = answer !== null && !answer.ok;
  refused.hidden = !failed;
  granted.hidden = answer === null || failed;
  if (failed) {
    const lines = [el("p", { class: "error-status", text: say(serverWords(answer)) })];
    if (answer.status === 401 || answer.status === 403) {
      lines.push(el("p", { class: "error-message", text: t(tab === "mine" ? "refusedHolder" : "refusedAdmin") }));
    }
    refused.replaceChildren(...lines);
  }
  return answer !== null && answer.ok;
}

/**
 * A table's head: one th per column, each sortable when sortable says so.
 * @param {HTMLTableElement} table
 * @param {{name: string, label: string, number?: boolean, sortable?: boolean}[]} columns
 */
function tableHead(table, columns) {
  const row = /** @type {HTMLTableRowElement} */ (table.tHead?.rows[0]);
  row.replaceChildren(
    ...columns.map((column) => {
      const sorted = state.sort === column.name;
      const th = el("th", {
        scope: "col",
        class: column.number ? "number" : null,
        "aria-sort": column.sortable ? (sorted ? state.direction : "none") : null,
        "data-column": column.name,
      });
      if (column.sortable) {
        th.append(el("button", { type: "button", "data-sort": column.name, text: column.label }));
      } else {
        th.textContent = column.label;
      }
      return th;
    }),
  );
}

/**
 * A table of totals per group (a usage report's groups): the group, its counts and cost; the totals below.
 * @param {HTMLTableElement} table
 * @param {string} groupWord
 * @param {readonly Totals[]} groups
 * @param {Totals} total
 */
function totalsTable(table, groupWord, groups, total) {
  tableHead(table, [
    { name: "group", label: t(groupWord) },
    ...TOTAL_COLUMNS.map((name) => ({ name, label: t(TOTAL_WORDS[name]), number: true })),
  ]);
  /** @param {Totals} group @param {string} name */
  const cell = (group, name) =>
    el("td", { class: "number", "data-column": name, text: name === "cost" ? formatMoney(group.cost) : count(/** @type {any} */ (group)[name]) });
  const body = /** @type {HTMLTableSectionElement} */ (table.tBodies[0]);
  if (groups.length === 0) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: TOTAL_COLUMNS.length + 1, text: t("noCalls") })));
  } else {
    body.replaceChildren(
      ...groups.map((group) =>
        el("tr", { "data-group": group.group }, el("th", { scope: "row", text: group.group || "" }), ...TOTAL_COLUMNS.map((name) => cell(group, name))),
      ),
    );
  }
  let foot = table.tFoot;
  if (!foot) foot = table.createTFoot();
  foot.replaceChildren(el("tr", {}, el("td", { text: t("totals") }), ...TOTAL_COLUMNS.map((name) => cell(total, name))));
}

/**
 * A list of facts (dt, dd pairs) in a dl.
 * @param {HTMLElement} list
 * @param {[string, string, string][]} facts [name for tests, label, value]
 */
function facts(list, facts) {
  list.replaceChildren(
    ...facts.map(([name, label, value]) => el("div", { "data-fact": name }, el("dt", { text: label }), el("dd", { text: value }))),
  );
}

/** @param {Totals} total @returns {[string, string, string][]} */
const totalFacts = (total) => [
  ["calls", t("calls"), count(total.calls)],
  ["errors", t("errors"), count(total.errors)],
  ["documents", t("documents"), count(total.documents)],
  ["tokens", t("tokens"), count(total.total_tokens)],
  ["cost", t("cost"), formatMoney(total.cost)],
];

// -- keys ------------------------------------------------------------------------------------------------

/** @returns {Key[]} */
const keyList = () => (state.keys && state.keys.ok ? state.keys.data.data : []);

/** @param {Key} key @param {SortColumn} column @returns {string} */
function keyCell(key, column) {
  const value = key[column];
  if (column === "models") return key.models ? key.models.join(", ") : t("everyModel");
  if (column === "budget" || column === "remaining") return value === null ? t("unlimited") : formatMoney(/** @type {string} */ (value));
  if (MONEY.has(column)) return formatMoney(/** @type {string} */ (value));
  if (column === "rpm" || column === "tpm") return value === null ? t("noLimit") : count(/** @type {number} */ (value));
  if (column === "expires_at" || column === "last_used_at") return value ? formatTime(/** @type {string} */ (value)) : t("never");
  if (column === "state") return t(`state_${value}`);
  return String(value ?? "");
}

/** @param {Key} key */
function keyActions(key) {
  const name = `${key.name} (${key.prefix})`;
  /** @param {string} action @param {string} word */
  const button = (action, word) =>
    el("button", { type: "button", "data-action": action, "data-id": key.id, "aria-label": `${t(word)} ${name}`, text: t(word) });
  const live = key.state !== "revoked";
  return el(
    "div",
    { class: "row-actions" },
    live && button("edit", "edit"),
    live && (key.disabled ? button("enable", "enable") : button("disable", "disable")),
    key.reserved !== "0" && button("release", "release"),
    live && button("revoke", "revoke"),
  );
}

function renderKeys() {
  if (!showGate("keys", state.keys)) return;
  const all = keyList();
  let shown = filterKeys(all, $("key-filter").value, $("key-state").value);
  if (state.sort) shown = sortKeys(shown, state.sort, state.direction);
  const table = $("keys-table");
  tableHead(table, [
    ...KEY_COLUMNS.map((name) => ({ name, label: t(`col_${name}`), number: MONEY.has(name) || name === "rpm" || name === "tpm", sortable: true })),
    { name: "actions", label: t("col_actions") },
  ]);
  const rows = shown.map((key) =>
    el(
      "tr",
      { "data-key-id": key.id, "data-prefix": key.prefix },
      ...KEY_COLUMNS.map((column) => {
        const text = keyCell(key, column);
        const number = MONEY.has(column) || column === "rpm" || column === "tpm";
        if (column === "name") return el("th", { scope: "row", "data-column": column, text });
        if (column === "state") return el("td", { "data-column": column }, el("span", { class: `state state-${key.state}`, text }));
        return el("td", { "data-column": column, class: number ? "number" : column === "models" ? "models" : null, text });
      }),
      el("td", { "data-column": "actions" }, keyActions(key)),
    ),
  );
  if (all.length === 0) rows.push(el("tr", {}, el("td", { colspan: KEY_COLUMNS.length + 1, text: t("noKeys") })));
  table.tBodies[0].replaceChildren(...rows);
  $("keys-count").textContent = t("keysCount", { shown: shown.length, total: all.length });
  renderKeyForm();
}

function renderKeyForm() {
  const form = state.form;
  $("key-form").hidden = form === null;
  if (form) {
    $("key-form-title").textContent = form.mode === "create" ? t("createTitle") : t("editTitle", { prefix: form.key?.prefix });
    $("key-form-submit").textContent = t(form.mode === "create" ? "create" : "save");
  }
  $("key-form-error").textContent = say(state.formError);
  $("created").hidden = state.created === null;
  if (state.created) {
    $("created-title").textContent = t("createdTitle", { name: state.created.name });
    $("created-key").value = state.created.key;
  }
}

async function loadKeys() {
  state.keys = await get("/admin/keys");
  renderKeys();
}

/** @param {Key | null} key @returns {KeyFields} */
function fieldsOf(key) {
  return {
    name: key ? key.name : "",
    models: key && key.models ? key.models.join(", ") : "",
    budget: key && key.budget !== null ? key.budget : "",
    rpm: key && key.rpm !== null ? String(key.rpm) : "",
    tpm: key && key.tpm !== null ? String(key.tpm) : "",
    expires: key && key.expires_at ? key.expires_at.slice(0, 10) : "",
  };
}

/** @returns {KeyFields} */
function typedFields() {
  return {
    name: $("f-name").value,
    models: $("f-models").value,
    budget: $("f-budget").value,
    rpm: $("f-rpm").value,
    tpm: $("f-tpm").value,
    expires: $("f-expires").value,
  };
}

/** @param {"create" | "edit"} mode @param {Key | null} key */
function openKeyForm(mode, key) {
  const initial = fieldsOf(key);
  state.form = { mode, key, initial };
  state.formError = null;
  state.created = null;
  $("f-name").value = initial.name;
  $("f-models").value = initial.models;
  $("f-budget").value = initial.budget;
  $("f-rpm").value = initial.rpm;
  $("f-tpm").value = initial.tpm;
  $("f-expires").value = initial.expires;
  renderKeyForm();
  $("f-name").focus();
}

function closeKeyForm() {
  const key = state.form && state.form.key;
  state.form = null;
  state.formError = null;
  renderKeyForm();
  const back = key ? document.querySelector(`#keys-table button[data-action=edit][data-id="${key.id}"]`) : $("new-key");
  if (back instanceof HTMLElement) back.focus();
}

/**
 * The body a key form sends: every field for a new key, only the changed ones for an edit. An empty field
 * is null (every model, unlimited, no limit, never); the server checks every value and says what is wrong.
 * @param {KeyFields} typed
 * @param {KeyFields | null} initial
 * @returns {Record<string, unknown>}
 */
function keyBody(typed, initial) {
  /** @type {Record<string, unknown>} */
  const body = {};
  /** @param {keyof KeyFields} field @param {string} name @param {(text: string) => unknown} value */
  const put = (field, name, value) => {
    const text = typed[field].trim();
    if (initial && text === initial[field].trim()) return;
    body[name] = text === "" ? null : value(text);
  };
  put("name", "name", (text) => text);
  put("models", "models", (text) => text.split(",").map((name) => name.trim()).filter(Boolean));
  put("budget", "budget", (text) => text);
  put("rpm", "rpm", Number);
  put("tpm", "tpm", Number);
  put("expires", "expires_at", (text) => text);
  if (!initial) {
    body.name = typed.name.trim();
    for (const name of ["models", "budget", "rpm", "tpm", "expires_at"]) if (body[name] === null) delete body[name];
  }
  return body;
}

async function submitKeyForm() {
  const form = state.form;
  if (!form) return;
  const creating = form.mode === "create";
  const body = keyBody(typedFields(), creating ? null : form.initial);
  const answer = creating
    ? await call("/admin/keys", { method: "POST", body, key: state.key })
    : await call(`/admin/keys/${form.key?.id}`, { method: "PATCH", body, key: state.key });
  if (!answer.ok) {
    state.formError = serverWords(answer);
    renderKeyForm();
    $("key-form-error").focus?.();
    return;
  }
  state.form = null;
  state.formError = null;
  if (creating) {
    state.created = { name: answer.data.name, key: answer.data.key };
  } else {
    state.notice = { key: "saved", values: { prefix: answer.data.prefix } };
  }
  await loadKeys();
  showNotice();
  if (creating) $("created-key").select();
  if (creating) $("created-key").focus();
}

/**
 * A row's action: edit, disable, enable, revoke or release, each one call of the admin API.
 * @param {string} action
 * @param {Key} key
 */
async function keyAction(action, key) {
  if (action === "edit") {
    openKeyForm("edit", key);
    return;
  }
  const names = { name: key.name, prefix: key.prefix, amount: formatMoney(key.reserved) };
  if (action === "revoke" && !confirm(t("confirmRevoke", names))) return;
  if (action === "release" && !confirm(t("confirmRelease", names))) return;
  /** @type {Answer} */
  let answer;
  if (action === "revoke") answer = await call(`/admin/keys/${key.id}`, { method: "DELETE", key: state.key });
  else if (action === "release") answer = await call(`/admin/keys/${key.id}/holds/release`, { method: "POST", body: {}, key: state.key });
  else answer = await call(`/admin/keys/${key.id}`, { method: "PATCH", body: { disabled: action === "disable" }, key: state.key });
  if (!answer.ok) state.notice = serverWords(answer);
  else if (action === "revoke") state.notice = { key: "revoked", values: { prefix: key.prefix } };
  else if (action === "release") state.notice = { key: "released", values: { prefix: key.prefix, count: answer.data.released.length } };
  else state.notice = { key: "saved", values: { prefix: key.prefix } };
  showNotice();
  await loadKeys();
}

// -- usage -----------------------------------------------------------------------------------------------

/** The filters of the usage tab as the API takes them: since the first day, until the day after the last. */
function usageQuery() {
  const from = $("u-from").value || addDays(today(), -29);
  const to = $("u-to").value || today();
  const query = new URLSearchParams({ since: from, until: addDays(to, 1) });
  if ($("u-key").value) query.set("key", $("u-key").value);
  if ($("u-model").value) query.set("model", $("u-model").value);
  return { from, to, query };
}

async function loadUsage() {
  const { from, to, query } = usageQuery();
  /** @param {string} by */
  const grouped = (by) => get(`/admin/usage?${query}&by=${by}`);
  const [day, key, model] = await Promise.all([grouped("day"), grouped("key"), grouped("model")]);
  state.usage = { day, key, model, from, to };
  renderUsage();
}

async function loadUsageChoices() {
  const [keys, models] = await Promise.all([get("/admin/keys"), state.models ? Promise.resolve(state.models) : get("/admin/models")]);
  state.usageChoices = keys;
  if (!state.models) state.models = models;
  /** @param {HTMLSelectElement} select @param {[string, string][]} options */
  const fill = (select, options) => {
    const chosen = select.value;
    select.replaceChildren(select.options[0], ...options.map(([value, text]) => el("option", { value, text })));
    select.value = options.some(([value]) => value === chosen) ? chosen : "";
  };
  if (keys.ok) fill($("u-key"), keys.data.data.map((/** @type {Key} */ key) => [String(key.id), `${key.name} (${key.prefix})`]));
  if (models.ok) fill($("u-model"), models.data.data.map((/** @type {{id: string}} */ model) => [model.id, model.id]));
}

function renderUsage() {
  const usage = state.usage;
  const failed = usage && [usage.day, usage.key, usage.model].find((answer) => !answer.ok);
  if (!showGate("usage", failed || (usage ? usage.day : null)) || !usage) return;
  const total = usage.day.data.total;
  facts($("usage-totals"), totalFacts(total));
  const metric = /** @type {"calls" | "tokens" | "cost"} */ ($("chart-metric").value);
  const words = { calls: "calls", tokens: "tokens", cost: "cost" };
  renderChart($("chart"), dailySeries(usage.day.data.groups, usage.from, usage.to), metric, {
    label: t("chartLabel", { metric: t(words[metric]), from: usage.from, to: usage.to }),
    format: (value) => (metric === "cost" ? formatMoney(String(value)) : count(value)),
  });
  totalsTable($("usage-by-key"), "group_key", usage.key.data.groups, usage.key.data.total);
  totalsTable($("usage-by-model"), "group_model", usage.model.data.groups, usage.model.data.total);
}

/**
 * Save text as a file the browser downloads (a blob of this page: nothing leaves the origin).
 * @param {Blob} blob
 * @param {string} name
 */
function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  state.notice = { key: "downloaded", values: { file: name } };
  showNotice();
}

async function downloadUsageCsv() {
  const { query } = usageQuery();
  query.set("format", "csv");
  if ($("csv-rows").value) query.set("by", $("csv-rows").value);
  let response;
  try {
    response = await fetch(`/admin/usage?${query}`, {
      headers: { Authorization: `Bearer ${state.key}` },
      credentials: "omit",
      cache: "no-store",
    });
  } catch (/** @type {any} */ error) {
    state.notice = { key: "networkError", values: { message: String(error && error.message) }, bad: true };
    showNotice();
    return;
  }
  if (!response.ok) {
    const text = await response.text();
    /** @type {any} */
    let data = null;
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
    const error = data && data.error ? data.error : { message: text, type: "" };
    state.notice = serverWords({ ok: false, status: response.status, ms: 0, data, headers: {}, error: { ...error, retryAfter: null, network: false } });
    showNotice();
    return;
  }
  download(await response.blob(), fileNameOf(response.headers.get("content-disposition"), "rerankd-usage.csv"));
}

// -- models ----------------------------------------------------------------------------------------------

/**
 * A model's price in words: its parts that are not zero; "free" without any.
 * @param {{per_request: string, per_million_tokens: string, per_search_unit: string} | null} price
 */
function priceWords(price) {
  if (!price) return t("free");
  const parts = [];
  if (Number(price.per_request)) parts.push(t("pricePerRequest", { amount: formatMoney(price.per_request) }));
  if (Number(price.per_million_tokens)) parts.push(t("pricePerMillion", { amount: formatMoney(price.per_million_tokens) }));
  if (Number(price.per_search_unit)) parts.push(t("pricePerUnit", { amount: formatMoney(price.per_search_unit) }));
  return parts.join("; ") || t("free");
}

function renderModels() {
  $("models-help").textContent = state.models && state.models.ok ? t("modelsHelp", { minutes: state.models.data.minutes }) : "";
  if (!showGate("models", state.models) || !state.models) return;
  const columns = ["model", "kind", "status", "precision", "price", "recent_calls", "failure_rate", "mean_ms", "max_ms", "circuit"];
  const numbers = new Set(["recent_calls", "failure_rate", "mean_ms", "max_ms"]);
  tableHead($("models-table"), columns.map((name) => ({ name, label: t(`col_${name}`), number: numbers.has(name) })));
  const rows = state.models.data.data.map((/** @type {any} */ model) => {
    const recent = model.recent;
    const circuit = model.circuit;
    const breaker = circuit
      ? t(circuit.circuit === "open" ? "circuitRetry" : "circuitValue", {
          circuit: circuit.circuit,
          failures: circuit.consecutive_failures,
          seconds: Math.ceil(circuit.retry_in_seconds),
        })
      : t("local");
    const name = el("th", { scope: "row", "data-column": "model", text: model.id });
    if (model.aliases.length) name.append(el("span", { class: "help", text: ` (${model.aliases.join(", ")})` }));
    const status = el("td", { "data-column": "status" }, el("span", { class: `state state-${model.status}`, text: t(`status_${model.status}`) }));
    if (model.error) status.append(el("p", { class: "model-error", text: model.error }));
    /** @param {string} column @param {string} text */
    const cell = (column, text) => el("td", { "data-column": column, class: numbers.has(column) ? "number" : null, text });
    return el(
      "tr",
      { "data-model": model.id },
      name,
      cell("kind", model.provider ? `${model.kind} · ${model.provider}` : model.kind),
      status,
      cell("precision", model.precision || "—"),
      cell("price", priceWords(model.price)),
      cell("recent_calls", recent ? count(recent.calls) : "—"),
      cell("failure_rate", recent ? formatRate(recent.failure_rate) : "—"),
      cell("mean_ms", recent ? formatMs(recent.mean_ms) : "—"),
      cell("max_ms", recent ? formatMs(recent.max_ms) : "—"),
      cell("circuit", breaker),
    );
  });
  $("models-table").tBodies[0].replaceChildren(...rows);
}

async function loadModels() {
  state.models = await get("/admin/models");
  renderModels();
}

// -- a key holder's own ----------------------------------------------------------------------------------

async function loadMine() {
  const from = $("m-from").value || addDays(today(), -29);
  const to = $("m-to").value || today();
  state.mine = await get(`/v1/usage?${new URLSearchParams({ since: from, until: addDays(to, 1) })}`);
  renderMine();
}

function renderMine() {
  if (!showGate("mine", state.mine) || !state.mine) return;
  const mine = state.mine.data;
  $("mine-title").textContent = t("mineTitle", { name: mine.name, prefix: mine.prefix });
  facts($("mine-key"), [
    ["state", t("col_state"), t(`state_${mine.state}`)],
    ["budget", t("col_budget"), mine.budget === null ? t("unlimited") : formatMoney(mine.budget)],
    ["spent", t("col_spent"), formatMoney(mine.spent)],
    ["remaining", t("budgetLeft"), mine.remaining === null ? t("unlimited") : formatMoney(mine.remaining)],
    ["models", t("col_models"), mine.models ? mine.models.join(", ") : t("everyModel")],
    ["rpm", t("col_rpm"), mine.rpm === null ? t("noLimit") : count(mine.rpm)],
    ["tpm", t("col_tpm"), mine.tpm === null ? t("noLimit") : count(mine.tpm)],
    ["expires_at", t("col_expires_at"), mine.expires_at ? formatTime(mine.expires_at) : t("never")],
  ]);
  facts($("mine-totals"), totalFacts(mine.total));
  totalsTable($("mine-by-model"), "group_model", mine.by_model, mine.total);
}

function downloadMineCsv() {
  if (!state.mine || !state.mine.ok) return;
  const header = ["model", "calls", "errors", "documents", "query_tokens", "documents_tokens", "total_tokens", "search_units", "cost"];
  const rows = state.mine.data.by_model.map((/** @type {Totals} */ group) => ({ ...group, model: group.group }));
  download(new Blob([csvOf(header, rows)], { type: "text/csv" }), `rerankd-usage-${state.mine.data.prefix}.csv`);
}

// -- signing in, tabs, language --------------------------------------------------------------------------

function showNotice() {
  $("notice").textContent = say(state.notice);
  $("notice").classList.toggle("bad", Boolean(state.notice && state.notice.bad));
}

function showSignedIn() {
  $("who").textContent = say(state.who);
  $("who").classList.toggle("bad", Boolean(state.who && state.who.bad));
  $("sign-out").hidden = !state.key;
  $("tabs").hidden = state.role === null;
  for (const tab of TABS) {
    const active = state.role !== null && tab === state.tab;
    const button = $(`tab-${tab}`);
    button.setAttribute("aria-selected", String(active));
    button.tabIndex = active ? 0 : -1;
    $(`panel-${tab}`).hidden = !active;
  }
}

function showAll() {
  setLanguage(currentLanguage());
  document.title = t("consolePageTitle");
  showSignedIn();
  showNotice();
  if (state.role === null) return;
  renderKeys();
  renderUsage();
  renderModels();
  renderMine();
}

/**
 * Open a tab and load what it shows (afresh: another operator may have changed it).
 * @param {Tab} tab
 * @param {boolean} [focus]
 */
async function openTab(tab, focus = false) {
  state.tab = tab;
  state.notice = null;
  showSignedIn();
  showNotice();
  if (focus) $(`tab-${tab}`).focus();
  if (tab === "keys") await loadKeys();
  if (tab === "usage") {
    await loadUsageChoices();
    await loadUsage();
  }
  if (tab === "models") await loadModels();
  if (tab === "mine") await loadMine();
}

async function signIn() {
  const key = $("console-key").value.trim() || state.key;
  if (!key) {
    state.who = { key: "needKey", bad: true };
    showSignedIn();
    return;
  }
  state.key = key;
  $("console-key").value = "";
  const admin = await get("/admin/keys");
  if (admin.ok || ![0, 401, 403].includes(admin.status)) {
    // An admin key: it opened /admin/ (a server without a database answers 503 there, to an admin only).
    state.role = "admin";
    state.who = { key: "signedInAdmin" };
    state.tab = "keys";
  } else {
    const mine = await get("/v1/usage");
    if (mine.ok) {
      state.role = "holder";
      state.who = { key: "signedInHolder", values: { name: mine.data.name, prefix: mine.data.prefix } };
      state.tab = "mine";
    } else {
      state.role = null;
      state.key = "";
      state.who = { key: "signedInNeither", values: { message: say(serverWords(mine)) }, bad: true };
    }
  }
  if (state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
  else sessionStorage.removeItem(KEY_STORAGE);
  showSignedIn();
  if (state.role !== null) await openTab(state.tab);
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  Object.assign(state, { key: "", role: null, who: null, notice: null, keys: null, form: null, created: null });
  Object.assign(state, { usage: null, usageChoices: null, models: null, mine: null });
  showAll();
  $("console-key").focus();
}

function wire() {
  $("sign-in").addEventListener("submit", (/** @type {Event} */ event) => {
    event.preventDefault();
    signIn();
  });
  $("sign-out").addEventListener("click", signOut);
  TABS.forEach((tab, position) => {
    const button = $(`tab-${tab}`);
    button.addEventListener("click", () => openTab(tab));
    button.addEventListener("keydown", (/** @type {KeyboardEvent} */ event) => {
      const step = /** @type {Record<string, number>} */ ({ ArrowRight: 1, ArrowLeft: -1 })[event.key];
      if (step) openTab(TABS[(position + step + TABS.length) % TABS.length], true);
      if (event.key === "Home") openTab(TABS[0], true);
      if (event.key === "End") openTab(TABS[TABS.length - 1], true);
    });
  });
  $("key-filter").addEventListener("input", renderKeys);
  $("key-state").addEventListener("change", renderKeys);
  $("keys-refresh").addEventListener("click", loadKeys);
  $("new-key").addEventListener("click", () => openKeyForm("create", null));
  $("keys-table").addEventListener("click", (/** @type {MouseEvent} */ event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    const sort = target.closest("button[data-sort]");
    if (sort instanceof HTMLElement) {
      const column = /** @type {SortColumn} */ (sort.dataset.sort);
      state.direction = state.sort === column ? OTHER_WAY[state.direction] : "ascending";
      state.sort = column;
      renderKeys();
      const again = $("keys-table").querySelector(`button[data-sort="${column}"]`);
      if (again) again.focus();
      return;
    }
    const button = target.closest("button[data-action]");
    if (!(button instanceof HTMLElement)) return;
    const key = keyList().find((item) => String(item.id) === button.dataset.id);
    if (key) keyAction(String(button.dataset.action), key);
  });
  $("key-form").addEventListener("submit", (/** @type {Event} */ event) => {
    event.preventDefault();
    submitKeyForm();
  });
  $("key-form-cancel").addEventListener("click", closeKeyForm);
  $("key-form").addEventListener("keydown", (/** @type {KeyboardEvent} */ event) => {
    if (event.key === "Escape") closeKeyForm();
  });
  $("copy-key").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("created-key").value);
      $("copy-key").textContent = t("copied");
      setTimeout(() => ($("copy-key").textContent = t("copy")), 2000);
    } catch {
      $("created-key").select(); // no clipboard outside secure contexts: selected, for Ctrl+C
    }
  });
  $("created-done").addEventListener("click", () => {
    state.created = null;
    renderKeyForm();
    $("new-key").focus();
  });
  $("usage-filters").addEventListener("submit", (/** @type {Event} */ event) => {
    event.preventDefault();
    loadUsage();
  });
  $("chart-metric").addEventListener("change", renderUsage);
  $("csv").addEventListener("click", downloadUsageCsv);
  $("models-refresh").addEventListener("click", loadModels);
  $("mine-filters").addEventListener("submit", (/** @type {Event} */ event) => {
    event.preventDefault();
    loadMine();
  });
  $("mine-csv").addEventListener("click", downloadMineCsv);
  $("lang").addEventListener("change", () => {
    localStorage.setItem(LANGUAGE_STORAGE, $("lang").value);
    setLanguage($("lang").value);
    showAll();
  });
}

function start() {
  setLanguage(localStorage.getItem(LANGUAGE_STORAGE) || preferredLanguage());
  $("lang").value = currentLanguage();
  const from = addDays(today(), -29);
  for (const id of ["u-from", "m-from"]) $(id).value = from;
  for (const id of ["u-to", "m-to"]) $(id).value = today();
  wire();
  showAll();
  if (state.key) signIn();
  else $("console-key").focus();
}

start();

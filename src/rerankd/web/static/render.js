// @ts-check
// Building the page's dynamic parts: the model choices, one ranked column per model, the comparison.
// Text from the user or the server is only ever set as text (textContent), never parsed as HTML.

import { spearman, topKOverlap } from "./compare.js";
import { t } from "./i18n.js";

/** @typedef {import("./api.js").Answer} Answer */
/** @typedef {import("./api.js").ApiError} ApiError */
/** @typedef {import("./api.js").Model} Model */
/** @typedef {import("./api.js").RerankResponse} RerankResponse */
/** @typedef {import("./api.js").RerankResult} RerankResult */
/** @typedef {import("./api.js").Span} Span */
/**
 * One model's part of a Rerank: the model asked and its answer.
 * @typedef {{model: string, answer: Answer}} Run
 */
/**
 * What el() appends: nodes and texts; null, undefined and false are left out.
 * @typedef {Node | string | null | undefined | false} Child
 */

export const FOLD_AT = 320; // code points: longer documents are folded to this much, around the best window
export const CONTEXT_BEFORE = 80; // code points kept before a best window that lies past the fold

/**
 * A new element: attributes "class" and "text" set its class and text, true an empty attribute, and null,
 * undefined or false none; children (arrays too) are appended.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, unknown>} [attributes]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = String(value);
    else if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

// -- models ------------------------------------------------------------------------------------------

/**
 * The model choices: one checkbox each, with its kind, status and error; unchecked boxes are disabled once
 * limit are selected.
 * @param {HTMLElement} container
 * @param {readonly Model[]} models
 * @param {readonly string[]} selected
 * @param {number} limit
 */
export function renderModels(container, models, selected, limit) {
  container.replaceChildren();
  if (models.length === 0) return;
  const full = selected.length >= limit;
  models.forEach((model, position) => {
    const id = `model-${position}`;
    const checked = selected.includes(model.id);
    const status = model.status || "not_loaded";
    const errorId = model.error ? `${id}-error` : null;
    const box = el("input", {
      type: "checkbox",
      id,
      value: model.id,
      checked,
      disabled: full && !checked,
      "aria-describedby": errorId,
    });
    const label = el(
      "label",
      { for: id },
      el("span", { class: "model-name", text: model.id }),
      el("span", { class: "model-kind", text: model.kind || "" }),
      el("span", { class: `badge status-${status}`, text: t(`status_${status}`) }),
    );
    const option = el("div", { class: "model-option", "data-model": model.id }, box, label);
    if (model.error) option.append(el("p", { class: "model-error", id: errorId, text: model.error }));
    container.append(option);
  });
}

/** After a box is (un)checked: the boxes left unchecked are disabled while ``limit`` are chosen. The list
 * is updated in place, not rebuilt, so the keyboard focus stays where it is.
 * @param {HTMLElement} container
 * @param {readonly string[]} selected
 * @param {number} limit
 */
export function limitModels(container, selected, limit) {
  const full = selected.length >= limit;
  for (const box of container.querySelectorAll("input[type=checkbox]")) {
    if (!(box instanceof HTMLInputElement)) continue;
    box.disabled = full && !box.checked;
  }
}

// -- one column per model ----------------------------------------------------------------------------

/** The best window of a result ({start, end} in code points, as Python counts), when the server sent a
 * valid one that is only part of the document (a whole short document is its own window).
 * @param {{span?: Span | null} | null | undefined} result
 * @param {number} length the document's length in code points
 * @returns {Span | null}
 */
export function spanOf(result, length) {
  const span = result && result.span;
  if (!span || !Number.isInteger(span.start) || !Number.isInteger(span.end)) return null;
  const valid = span.start >= 0 && span.start < span.end && span.end <= length;
  return valid && (span.start > 0 || span.end < length) ? span : null;
}

/**
 * The part of a document shown, [from, to) in code points: all of it when expanded or not longer than
 * FOLD_AT; else FOLD_AT code points from the start or, when the best window ends past the fold, from the first
 * word start within CONTEXT_BEFORE code points before the window; the whole window always shows.
 * @param {readonly string[]} chars the document's code points
 * @param {Span | null} span its best window (spanOf)
 * @param {boolean} expanded
 * @returns {{from: number, to: number}}
 */
export function foldRange(chars, span, expanded) {
  let from = 0;
  let to = chars.length;
  if (!expanded && chars.length > FOLD_AT) {
    if (span && span.end > FOLD_AT) {
      from = Math.max(0, span.start - CONTEXT_BEFORE);
      const space = chars.slice(from, span.start).findIndex((char) => /\s/.test(char));
      if (from > 0 && space >= 0) from += space + 1; // the excerpt starts at a word
    }
    to = Math.min(chars.length, Math.max(from + FOLD_AT, span ? span.end : 0)); // the whole window shows
  }
  return { from, to };
}

/**
 * @param {string} text
 * @param {Span | null} span
 * @param {boolean} expanded
 * @returns {HTMLParagraphElement}
 */
function documentNode(text, span, expanded) {
  const chars = Array.from(text);
  const { from, to } = foldRange(chars, span, expanded);
  /** @type {(a: number, b: number) => string} */
  const piece = (a, b) => chars.slice(Math.max(a, from), Math.min(b, to)).join("");
  const node = el("p", { class: "doc" });
  if (from > 0) node.append("… ");
  if (span && span.start < to && span.end > from) {
    node.append(piece(from, span.start));
    node.append(el("mark", { title: t("bestWindow"), text: piece(span.start, span.end) }));
    node.append(piece(span.end, to));
  } else {
    node.append(piece(from, to));
  }
  if (to < chars.length) node.append(" …");
  return node;
}

/**
 * @param {RerankResult} result
 * @param {readonly string[]} documents
 * @param {number} rank 1-based
 * @returns {HTMLLIElement}
 */
function resultItem(result, documents, rank) {
  const text = typeof result.document === "string" ? result.document : documents[result.index] ?? "";
  const length = Array.from(text).length;
  const span = spanOf(result, length);
  const score = Number(result.relevance_score);
  const fill = el("span", { class: "fill" });
  fill.style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
  const item = el(
    "li",
    { class: "result", "data-index": result.index },
    el(
      "div",
      { class: "result-head" },
      el("span", { class: "rank", "aria-label": t("rankLabel", { rank }), text: String(rank) }),
      el("span", {
        class: "index",
        title: t("originalIndexLabel", { index: result.index }),
        "aria-label": t("originalIndexLabel", { index: result.index }),
        text: t("originalIndex", { index: result.index }),
      }),
      el("span", { class: "score", title: String(score), text: score.toFixed(4) }),
      el("span", { class: "bar", "aria-hidden": "true" }, fill),
    ),
  );
  let expanded = false;
  let body = documentNode(text, span, expanded);
  item.append(body);
  if (length > FOLD_AT) {
    const toggle = el("button", { type: "button", class: "fold", "aria-expanded": "false", text: t("showAll") });
    toggle.addEventListener("click", () => {
      expanded = !expanded;
      const next = documentNode(text, span, expanded);
      body.replaceWith(next);
      body = next;
      toggle.setAttribute("aria-expanded", String(expanded));
      toggle.textContent = t(expanded ? "showLess" : "showAll");
    });
    item.append(toggle);
  }
  return item;
}

/**
 * @param {string} name
 * @param {string} value
 * @returns {HTMLElement[]}
 */
function fact(name, value) {
  return [el("dt", { text: name }), el("dd", { text: value })];
}

/**
 * @param {Run} run an answered one
 * @returns {HTMLDListElement}
 */
function facts(run) {
  const { headers } = run.answer;
  const data = /** @type {RerankResponse} */ (run.answer.data);
  const list = el("dl", { class: "facts" });
  const ms = Math.round(run.answer.ms);
  const server = headers["x-total-time"];
  list.append(
    ...fact(
      t("latency"),
      server ? t("latencyValue", { ms, server: Math.round(Number(server)) }) : t("latencyOnly", { ms }),
    ),
  );
  if (data.usage) {
    const usage = data.usage;
    list.append(
      ...fact(
        t("tokens"),
        t("tokensValue", { total: usage.total_tokens, query: usage.query_tokens, documents: usage.documents_tokens }),
      ),
    );
  }
  const servedBy = (data.metadata && data.metadata.served_by) || headers["x-rerankd-served-by"] || data.model;
  const answered = servedBy === run.model ? servedBy : `${servedBy} (${t("fallback", { model: run.model })})`;
  list.append(...fact(t("answeredBy"), answered));
  const attempts = (data.metadata && data.metadata.attempts) || [];
  if (attempts.some((attempt) => !attempt.ok)) {
    const lines = attempts.map((attempt) =>
      attempt.ok ? t("attemptOk", { model: attempt.model }) : t("attemptFailed", { model: attempt.model, error: attempt.error || "" }),
    );
    list.append(el("dt", { text: t("attempts") }), el("dd", {}, el("ul", {}, lines.map((line) => el("li", { text: line })))));
  }
  if (headers["x-request-id"]) list.append(...fact(t("requestId"), headers["x-request-id"]));
  return list;
}

/**
 * @param {Answer} answer a failed one
 * @returns {HTMLDivElement}
 */
function errorBox(answer) {
  const error = /** @type {ApiError} */ (answer.error);
  const box = el("div", { class: "error-box", role: "alert" });
  if (error.network) {
    box.append(el("p", { class: "error-message", text: t("networkError", { message: error.message }) }));
    return box;
  }
  const title = t("httpError", { status: answer.status }) + (error.type ? ` · ${error.type}` : "");
  box.append(el("p", { class: "error-status", text: title }), el("p", { class: "error-message", text: error.message }));
  if (error.retryAfter !== null && error.retryAfter !== undefined) {
    box.append(el("p", { class: "retry-after", text: t("retryAfter", { seconds: error.retryAfter }) }));
  }
  return box;
}

/**
 * One column per model. One run is {model, answer} (answer as api.call returns it); documents are the texts sent.
 * @param {HTMLElement} container
 * @param {readonly Run[]} runs
 * @param {readonly string[]} documents
 */
export function renderColumns(container, runs, documents) {
  container.replaceChildren();
  runs.forEach((run, position) => {
    const titleId = `column-${position}`;
    const column = el(
      "article",
      { class: `column${run.answer.ok ? "" : " failed"}`, "data-model": run.model, "aria-labelledby": titleId },
      el("h3", { id: titleId, text: run.model }),
    );
    if (!run.answer.ok) {
      column.append(errorBox(run.answer));
    } else {
      const results = /** @type {RerankResponse} */ (run.answer.data).results || [];
      column.append(facts(run));
      if (results.length === 0) column.append(el("p", { class: "help", text: t("noResults") }));
      else column.append(el("ol", { class: "ranking" }, results.map((result, rank) => resultItem(result, documents, rank + 1))));
    }
    container.append(column);
  });
}

// -- across models -----------------------------------------------------------------------------------

/**
 * The original indexes of a run's results, best first.
 * @param {Run} run an answered one
 * @returns {number[]}
 */
function rankingOf(run) {
  return (/** @type {RerankResponse} */ (run.answer.data).results || []).map((result) => result.index);
}

/**
 * A row per pair of models that both answered: top-k overlap and rank correlation. Hidden below two.
 * @param {HTMLElement} section holds the table
 * @param {readonly Run[]} runs
 */
export function renderComparison(section, runs) {
  const ranked = runs.filter((run) => run.answer.ok);
  const body = /** @type {HTMLTableSectionElement} */ (section.querySelector("tbody"));
  body.replaceChildren();
  section.hidden = ranked.length < 2;
  for (let i = 0; i < ranked.length; i++) {
    for (let j = i + 1; j < ranked.length; j++) {
      const a = rankingOf(ranked[i]);
      const b = rankingOf(ranked[j]);
      const overlap = topKOverlap(a, b);
      const { rho, n } = spearman(a, b);
      body.append(
        el(
          "tr",
          {},
          el("th", { scope: "row", text: `${ranked[i].model} · ${ranked[j].model}` }),
          el("td", { class: "overlap", text: t("overlapValue", overlap) }),
          el("td", {
            class: "correlation",
            text: rho === null ? t("notEnough") : t("correlationValue", { rho: rho.toFixed(2), n }),
          }),
        ),
      );
    }
  }
}

// @ts-check
// The Rerank request the form describes, and what keeps the form from sending one: pure functions of the
// form's values, so that node's test runner checks them without a page (playground.js reads the fields).

import { linesOf } from "./documents.js";

/** @typedef {import("./api.js").RerankRequest} RerankRequest */

/**
 * The form's values as typed: documents one per line, Top N as text.
 * @typedef {{query: string, documents: string, topN: string}} FormValues
 */

/**
 * What is wrong with the form: the i18n key of the message and the field to focus ("models": the model list).
 * @typedef {{key: string, field: "query" | "documents" | "models" | "top-n"}} Problem
 */

/**
 * Top N from its field: null when empty (every document), else a whole number of 1 or more.
 * @param {string} text
 * @returns {{value: number | null, error?: undefined} | {error: "badTopN", value?: undefined}}
 */
export function parseTopN(text) {
  const trimmed = text.trim();
  if (trimmed === "") return { value: null };
  const value = Number(trimmed);
  return Number.isInteger(value) && value >= 1 ? { value } : { error: "badTopN" };
}

/**
 * The body of /v1/rerank for one model.
 * @param {string} model
 * @param {FormValues} values
 * @returns {RerankRequest}
 */
export function rerankRequest(model, values) {
  return {
    model,
    query: values.query.trim(),
    documents: linesOf(values.documents),
    top_n: parseTopN(values.topN).value ?? null,
    return_documents: true,
    return_spans: true, // where each document matched best, for models that score windows
  };
}

/**
 * The first thing that keeps the form from being sent, in the order of the fields; null when there is none.
 * @param {FormValues} values
 * @param {number} selected how many models are chosen
 * @returns {Problem | null}
 */
export function formProblem(values, selected) {
  if (values.query.trim() === "") return { key: "needQuery", field: "query" };
  if (linesOf(values.documents).length === 0) return { key: "needDocuments", field: "documents" };
  if (selected === 0) return { key: "needModel", field: "models" };
  const topN = parseTopN(values.topN);
  if (topN.error) return { key: topN.error, field: "top-n" };
  return null;
}

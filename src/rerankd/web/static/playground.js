// @ts-check
// The playground: reads the form, asks the server's own /v1/models and /v1/rerank (one request per chosen
// model, in parallel) and shows the answers side by side. The API key lives in sessionStorage: this tab only.

import { call } from "./api.js";
import { parseFile } from "./documents.js";
import { currentLanguage, preferredLanguage, setLanguage, t } from "./i18n.js";
import { limitModels, renderColumns, renderComparison, renderModels } from "./render.js";
import { formProblem, rerankRequest } from "./request.js";
import { snippets } from "./snippets.js";

/** @typedef {import("./api.js").Model} Model */
/** @typedef {import("./render.js").Run} Run */
/** @typedef {import("./snippets.js").Snippets} Snippets */
/**
 * A message kept as an i18n key and its values, so that a language switch re-words it.
 * @typedef {{key: string, values?: Record<string, unknown>}} Message
 */

const MAX_MODELS = 3;
const KEY_STORAGE = "rerankd.playground.key";
const LANGUAGE_STORAGE = "rerankd.playground.language";
const EXAMPLE = {
  query: "What is the capital of the United States?",
  top_n: 3,
  documents: [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. Its capital is Saipan.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) is the capital of the United States. It is a federal district.",
    "Capitalization or capitalisation in English grammar is the use of a capital letter at the start of a word. English usage varies from capitalization in other languages.",
    "Capital punishment (the death penalty) has existed in the United States since beforethe United States was a country. As of 2017, capital punishment is legal in 30 of the 50 states.",
  ],
};

/**
 * The elements whose type the script relies on, by id; any other id is an HTMLElement.
 * @typedef {{lang: HTMLSelectElement, form: HTMLFormElement, "api-key": HTMLInputElement,
 *   query: HTMLTextAreaElement, documents: HTMLTextAreaElement, file: HTMLInputElement, "top-n": HTMLInputElement,
 *   rerank: HTMLButtonElement}} PageElements
 */

/**
 * The element with this id: the page has every id the script asks for.
 * @template {string} K
 * @param {K} id
 * @returns {K extends keyof PageElements ? PageElements[K] : HTMLElement}
 */
const $ = (id) => /** @type {any} */ (document.getElementById(id));

/** @returns {HTMLElement[]} the code panel's tabs, each with data-lang naming its snippet */
const codeTabs = () => [.../** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("[role=tab]"))];

/**
 * @param {HTMLElement} tab
 * @returns {keyof Snippets}
 */
const snippetOf = (tab) => /** @type {keyof Snippets} */ (tab.dataset.lang);

/**
 * @typedef {object} State
 * @property {Model[]} models
 * @property {string[]} selected
 * @property {Message | null} modelsMessage
 * @property {string} key
 * @property {boolean} keyed
 * @property {Run[] | null} runs of the last Rerank, with the documents sent
 * @property {string[]} documents
 * @property {keyof Snippets} codeLanguage
 * @property {Message | null} status kept as a key so that a language switch re-words it
 * @property {Message | null} formError
 */

/** @type {State} */
const state = {
  models: [],
  selected: [],
  modelsMessage: { key: "modelsLoading" },
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  keyed: false,
  runs: null, // [{model, answer}] of the last Rerank, with the documents sent
  documents: [],
  codeLanguage: "curl",
  status: null, // {key, values}: kept as a key so that a language switch re-words it
  formError: null,
};

// -- the request ---------------------------------------------------------------------------------------

/** @returns {import("./request.js").FormValues} */
function formValues() {
  return { query: $("query").value, documents: $("documents").value, topN: $("top-n").value };
}

/**
 * @param {string} model
 * @returns {import("./api.js").RerankRequest}
 */
function requestFor(model) {
  return rerankRequest(model, formValues());
}

function problem() {
  return formProblem(formValues(), state.selected.length);
}

// -- showing things ------------------------------------------------------------------------------------

function showStatus() {
  $("status").textContent = state.status ? t(state.status.key, state.status.values) : "";
  $("form-error").textContent = state.formError ? t(state.formError.key, state.formError.values) : "";
}

function showModels() {
  const list = $("model-list");
  if (state.models.length === 0) {
    const message = state.modelsMessage ? t(state.modelsMessage.key, state.modelsMessage.values) : t("noModels");
    list.replaceChildren(Object.assign(document.createElement("p"), { className: "help", textContent: message }));
    return;
  }
  renderModels(list, state.models, state.selected, MAX_MODELS);
}

/** @param {boolean} focus */
function showKeyField(focus) {
  $("key-section").hidden = false;
  $("api-key").value = state.key;
  if (focus) $("api-key").focus();
}

function showRuns() {
  if (!state.runs) return;
  renderColumns($("columns"), state.runs, state.documents);
  renderComparison($("comparison"), state.runs);
}

function showCode() {
  if ($("code-panel").hidden) return;
  const model = state.selected[0] || (state.models[0] && state.models[0].id) || "MODEL";
  const code = snippets(location.origin, requestFor(model), state.keyed || state.key !== "");
  /** @type {HTMLElement} */ ($("code-block").querySelector("code")).textContent = code[state.codeLanguage];
  $("code-note").textContent = t("codeNote", { model });
  for (const tab of codeTabs()) {
    const active = snippetOf(tab) === state.codeLanguage;
    tab.setAttribute("aria-selected", String(active));
    tab.tabIndex = active ? 0 : -1;
    if (active) $("code-block").setAttribute("aria-labelledby", tab.id);
  }
}

function showAll() {
  setLanguage(currentLanguage());
  $("view-code").textContent = t($("code-panel").hidden ? "viewCode" : "hideCode");
  showModels();
  showRuns();
  showCode();
  showStatus();
}

// -- talking to the server -----------------------------------------------------------------------------

async function loadModels() {
  const answer = await call("/v1/models", { key: state.key });
  if (answer.error && answer.status === 401) {
    state.keyed = true;
    state.models = [];
    state.modelsMessage = { key: "keyNeeded", values: { message: answer.error.message } };
    showKeyField(true);
  } else if (answer.error) {
    state.models = [];
    state.modelsMessage = answer.error.network
      ? { key: "networkError", values: { message: answer.error.message } }
      : { key: "modelsError", values: { message: answer.error.message } };
  } else {
    state.models = (answer.data && answer.data.data) || [];
    state.modelsMessage = null;
    const names = state.models.map((model) => model.id);
    state.selected = state.selected.filter((name) => names.includes(name));
    if (state.selected.length === 0 && state.models.length > 0) {
      const ready = state.models.find((model) => model.status === "ready") || state.models[0];
      state.selected = [ready.id];
    }
  }
  showModels();
  showCode();
}

async function rerank() {
  const found = problem();
  state.formError = found ? { key: found.key } : null;
  if (found) {
    showStatus();
    const field = found.field === "models" ? $("model-list").querySelector("input") : $(found.field);
    if (field) field.focus();
    return;
  }
  const models = [...state.selected];
  const bodies = models.map(requestFor);
  const button = $("rerank");
  button.disabled = true;
  $("results").setAttribute("aria-busy", "true");
  state.status = { key: "ranking", values: { count: bodies[0].documents.length, models: models.join(", ") } };
  showStatus();
  try {
    const answers = await Promise.all(bodies.map((body) => call("/v1/rerank", { method: "POST", body, key: state.key })));
    state.runs = models.map((model, position) => ({ model, answer: answers[position] }));
    state.documents = bodies[0].documents;
    const summary = state.runs
      .map((run) => `${run.model} ${run.answer.ok ? `${Math.round(run.answer.ms)} ms` : `HTTP ${run.answer.status || "—"}`}`)
      .join(", ");
    state.status = { key: "ranked", values: { count: state.documents.length, models: summary } };
    const refused = answers.find((answer) => answer.status === 401);
    if (refused) {
      state.keyed = true;
      showKeyField(true);
    }
    showRuns();
  } finally {
    button.disabled = false;
    $("results").removeAttribute("aria-busy");
    showStatus();
  }
}

function useKey() {
  state.key = $("api-key").value.trim();
  if (state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
  else sessionStorage.removeItem(KEY_STORAGE);
  state.modelsMessage = { key: "modelsLoading" };
  showModels();
  loadModels();
}

// -- wiring --------------------------------------------------------------------------------------------

function wire() {
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    rerank();
  });
  for (const id of ["query", "documents"]) {
    $(id).addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        $("form").requestSubmit();
      }
    });
  }
  $("form").addEventListener("input", showCode);
  $("use-key").addEventListener("click", useKey);
  $("api-key").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault(); // not a Rerank: the key is set first
      useKey();
    }
  });
  $("model-list").addEventListener("change", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || box.type !== "checkbox") return;
    const others = state.selected.filter((name) => name !== box.value);
    state.selected = box.checked ? [...others, box.value].slice(0, MAX_MODELS) : others;
    limitModels($("model-list"), state.selected, MAX_MODELS);
    showCode();
  });
  $("example").addEventListener("click", () => {
    $("query").value = EXAMPLE.query;
    $("documents").value = EXAMPLE.documents.join("\n");
    $("top-n").value = String(EXAMPLE.top_n);
    showCode();
  });
  $("file").addEventListener("change", async () => {
    const file = $("file").files?.[0];
    if (!file) return;
    const parsed = parseFile(file.name, await file.text());
    if (parsed.error) {
      state.formError = { key: "fileError", values: { file: file.name, line: parsed.error.line } };
    } else {
      $("documents").value = parsed.documents.join("\n");
      state.formError = null;
      state.status = { key: "fileLoaded", values: { count: parsed.documents.length, file: file.name } };
      showCode();
    }
    showStatus();
  });
  $("view-code").addEventListener("click", () => {
    const panel = $("code-panel");
    panel.hidden = !panel.hidden;
    $("view-code").setAttribute("aria-expanded", String(!panel.hidden));
    $("view-code").textContent = t(panel.hidden ? "viewCode" : "hideCode");
    showCode();
  });
  const tabs = codeTabs();
  tabs.forEach((tab, position) => {
    tab.addEventListener("click", () => {
      state.codeLanguage = snippetOf(tab);
      showCode();
    });
    tab.addEventListener("keydown", (event) => {
      const step = /** @type {Record<string, number>} */ ({ ArrowRight: 1, ArrowLeft: -1 })[event.key];
      if (!step) return;
      const next = tabs[(position + step + tabs.length) % tabs.length];
      state.codeLanguage = snippetOf(next);
      showCode();
      next.focus();
    });
  });
  $("copy-code").addEventListener("click", async () => {
    const text = $("code-block").textContent ?? "";
    try {
      await navigator.clipboard.writeText(text);
      $("copy-code").textContent = t("copied");
      setTimeout(() => ($("copy-code").textContent = t("copy")), 2000);
    } catch {
      getSelection()?.selectAllChildren($("code-block")); // no clipboard outside secure contexts: select it
    }
  });
  $("lang").addEventListener("change", () => {
    localStorage.setItem(LANGUAGE_STORAGE, $("lang").value);
    setLanguage($("lang").value);
    showAll();
  });
}

function start() {
  const language = localStorage.getItem(LANGUAGE_STORAGE) || preferredLanguage();
  setLanguage(language);
  $("lang").value = currentLanguage();
  if (state.key) showKeyField(false);
  wire();
  showAll();
  loadModels();
}

start();

// @ts-check
// The page's words in English and Chinese. Static text carries data-i18n="key" (or
// data-i18n-aria-label); text built by the scripts asks t(key, values).

/** The English words, by key; every other language has the same keys (tsc checks it). */
const EN = {
  pageTitle: "rerankd playground",
  title: "playground",
  skipToResults: "Skip to the results",
  pages: "Pages",
  apiDocs: "API docs",
  consoleLink: "Console",
  language: "Language",
  tagline: "Rank documents against a query with the models this server runs, up to three side by side.",
  apiKey: "API key",
  useKey: "Use key",
  apiKeyHelp: "This server requires an API key. It is kept in this browser tab only.",
  query: "Query",
  documents: "Documents",
  documentsHelp:
    'One document per line, or load a .txt file (one per line) or a .jsonl file (strings or {"text": ...} objects).',
  loadFile: "Load a file",
  model: "Model",
  modelHelp: "Choose one to three models.",
  modelsLoading: "Loading the models…",
  noModels: "This server has no models configured.",
  modelsError: "Could not list the models: {message}",
  status_ready: "ready",
  status_not_loaded: "loads on first use",
  status_loading: "loading",
  status_failed: "failed",
  topN: "Top N",
  topNHelp: "Empty: every document.",
  rerank: "Rerank",
  example: "Load the example",
  viewCode: "View code",
  hideCode: "Hide code",
  codeTitle: "The request as code",
  codeNote: "The request for {model}. The key, if the server needs one, is read from RERANKD_API_KEY.",
  copy: "Copy",
  copied: "Copied",
  results: "Results",
  resultsEmpty: "One ranked list per model appears here.",
  ranking: "Ranking {count} documents with {models}…",
  ranked: "Ranked {count} documents: {models}.",
  rankLabel: "Rank {rank}",
  originalIndex: "#{index}",
  originalIndexLabel: "document {index} of the list",
  score: "score",
  latency: "Latency",
  latencyValue: "{ms} ms (server {server} ms)",
  latencyOnly: "{ms} ms",
  tokens: "Tokens",
  tokensValue: "{total} (query {query}, documents {documents})",
  answeredBy: "Answered by",
  fallback: "fallback for {model}",
  attempts: "Attempts",
  attemptOk: "{model}: answered",
  attemptFailed: "{model}: {error}",
  requestId: "Request id",
  showAll: "Show all",
  showLess: "Show less",
  bestWindow: "best window",
  noResults: "No results.",
  comparison: "Across models",
  pair: "Models",
  overlap: "Top-k overlap",
  correlation: "Rank correlation (Spearman)",
  overlapValue: "{shared} of the top {k}",
  correlationValue: "{rho} over {n} documents both ranked",
  notEnough: "— (fewer than 2 documents in common)",
  httpError: "HTTP {status}",
  retryAfter: "Retry after {seconds} s.",
  networkError: "Could not reach the server: {message}",
  needQuery: "Type a query.",
  needDocuments: "Add at least one document.",
  needModel: "Choose at least one model.",
  badTopN: "Top N is a whole number of 1 or more, or empty.",
  keyNeeded: "The server needs an API key: {message}",
  fileError: "{file}, line {line}: not a JSON string or an object with a text field.",
  fileLoaded: "Loaded {count} documents from {file}.",
};

/** @type {Record<keyof typeof EN, string>} */
const ZH = {
  pageTitle: "rerankd 试用台",
  title: "试用台",
  skipToResults: "跳到结果",
  pages: "页面",
  apiDocs: "API 文档",
  consoleLink: "控制台",
  language: "语言",
  tagline: "用本服务器运行的模型按查询对文档重排序，最多三个模型并排比较。",
  apiKey: "API 密钥",
  useKey: "使用密钥",
  apiKeyHelp: "此服务器需要 API 密钥。密钥只保存在当前浏览器标签页中。",
  query: "查询",
  documents: "文档",
  documentsHelp: '每行一篇文档，或载入 .txt 文件（每行一篇）或 .jsonl 文件（字符串或 {"text": ...} 对象）。',
  loadFile: "载入文件",
  model: "模型",
  modelHelp: "选择一到三个模型。",
  modelsLoading: "正在获取模型列表…",
  noModels: "此服务器没有配置任何模型。",
  modelsError: "无法获取模型列表：{message}",
  status_ready: "就绪",
  status_not_loaded: "首次使用时加载",
  status_loading: "加载中",
  status_failed: "加载失败",
  topN: "前 N 条",
  topNHelp: "留空：返回全部文档。",
  rerank: "重排序",
  example: "载入示例",
  viewCode: "查看代码",
  hideCode: "隐藏代码",
  codeTitle: "请求的代码",
  codeNote: "发给 {model} 的请求。如服务器需要密钥，代码从环境变量 RERANKD_API_KEY 读取。",
  copy: "复制",
  copied: "已复制",
  results: "结果",
  resultsEmpty: "每个模型的排序结果会显示在这里。",
  ranking: "正在用 {models} 对 {count} 篇文档排序…",
  ranked: "已对 {count} 篇文档排序：{models}。",
  rankLabel: "第 {rank} 名",
  originalIndex: "#{index}",
  originalIndexLabel: "列表中的第 {index} 篇文档",
  score: "分数",
  latency: "延迟",
  latencyValue: "{ms} 毫秒（服务器 {server} 毫秒）",
  latencyOnly: "{ms} 毫秒",
  tokens: "词元",
  tokensValue: "{total}（查询 {query}，文档 {documents}）",
  answeredBy: "应答模型",
  fallback: "{model} 的回退模型",
  attempts: "尝试",
  attemptOk: "{model}：已应答",
  attemptFailed: "{model}：{error}",
  requestId: "请求 ID",
  showAll: "展开全文",
  showLess: "收起",
  bestWindow: "最佳片段",
  noResults: "没有结果。",
  comparison: "模型间比较",
  pair: "模型",
  overlap: "前 k 条重合",
  correlation: "排序相关性（Spearman）",
  overlapValue: "前 {k} 条中有 {shared} 条相同",
  correlationValue: "{rho}（基于两者都排出的 {n} 篇文档）",
  notEnough: "—（共同文档少于 2 篇）",
  httpError: "HTTP {status}",
  retryAfter: "请在 {seconds} 秒后重试。",
  networkError: "无法连接服务器：{message}",
  needQuery: "请输入查询。",
  needDocuments: "请至少添加一篇文档。",
  needModel: "请至少选择一个模型。",
  badTopN: "前 N 条须为不小于 1 的整数，或留空。",
  keyNeeded: "服务器需要 API 密钥：{message}",
  fileError: "{file} 第 {line} 行：既不是 JSON 字符串，也不是带 text 字段的对象。",
  fileLoaded: "已从 {file} 载入 {count} 篇文档。",
};

/**
 * Every language's words, by language code and key.
 * @type {Readonly<Record<string, Readonly<Record<string, string>>>>}
 */
export const STRINGS = { en: EN, zh: ZH };

export const LANGUAGES = Object.keys(STRINGS);
let language = "en";

/** @returns {string} */
export function currentLanguage() {
  return language;
}

/**
 * The language the browser prefers, if the page has it; English otherwise.
 * @param {readonly string[]} [preferences] language tags, most preferred first
 * @returns {string}
 */
export function preferredLanguage(preferences = navigator.languages || [navigator.language]) {
  for (const tag of preferences) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (base in STRINGS) return base;
  }
  return "en";
}

/**
 * The text of a key in the current language (English where the language lacks it, the key itself where both
 * do), with each {name} that values has replaced by its value.
 * @param {string} key
 * @param {Record<string, unknown>} [values]
 * @returns {string}
 */
export function t(key, values = {}) {
  const text = STRINGS[language][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/**
 * Switch the language and re-label the static parts of the page.
 * @param {string} next a language code; English when the page does not have it
 * @param {ParentNode} [root]
 */
export function setLanguage(next, root = document) {
  language = next in STRINGS ? next : "en";
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
  document.title = t("pageTitle");
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.getAttribute("data-i18n") ?? "");
  for (const node of root.querySelectorAll("[data-i18n-aria-label]")) {
    node.setAttribute("aria-label", t(node.getAttribute("data-i18n-aria-label") ?? ""));
  }
}

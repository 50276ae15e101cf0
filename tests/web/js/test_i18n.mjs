// i18n.js: the words of the page in each language, t()'s substitution and the language chosen.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { after, describe, test } from "node:test";

import {
  LANGUAGES,
  STRINGS,
  currentLanguage,
  preferredLanguage,
  setLanguage,
  t,
} from "../../../src/rerankd/web/static/i18n.js";
// The console adds its own words to these (and names them in its page and scripts, scanned below too).
import "../../../src/rerankd/web/static/console-i18n.js";

const STATIC = new URL("../../../src/rerankd/web/static/", import.meta.url);
const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((match) => match[1]).sort();

/** setLanguage() re-labels a page: this one is just enough of document for it, with nodes that record labels. */
function fakePage(nodes) {
  globalThis.document = { documentElement: { lang: "" }, title: "" };
  return {
    querySelectorAll: (selector) => nodes.filter((node) => node.attribute === selector.slice(1, -1)),
  };
}
function fakeNode(attribute, key) {
  const node = {
    attribute,
    textContent: "",
    labels: {},
    getAttribute: (name) => (name === attribute ? key : null),
    setAttribute: (name, value) => (node.labels[name] = value),
  };
  return node;
}

after(() => {
  setLanguage("en", fakePage([]));
  delete globalThis.document;
});

describe("the strings", () => {
  test("English and Chinese", () => {
    assert.deepEqual(LANGUAGES, ["en", "zh"]);
  });

  test("every language has English's keys, each with the same placeholders", () => {
    const keys = Object.keys(STRINGS.en).sort();
    for (const language of LANGUAGES) {
      assert.deepEqual(Object.keys(STRINGS[language]).sort(), keys, language);
      for (const key of keys) {
        assert.ok(STRINGS[language][key].trim() !== "", `${language}.${key} is empty`);
        assert.deepEqual(placeholders(STRINGS[language][key]), placeholders(STRINGS.en[key]), `${language}.${key}`);
      }
    }
  });

  test("every key the page and the scripts name exists", () => {
    const html = ["playground.html", "console.html"].map((page) => readFileSync(new URL(page, STATIC), "utf8")).join("");
    const named = [...html.matchAll(/data-i18n(?:-aria-label)?="([^"]+)"/g)].map((match) => match[1]);
    for (const file of readdirSync(STATIC).filter((name) => name.endsWith(".js"))) {
      const code = readFileSync(new URL(file, STATIC), "utf8");
      for (const pattern of [/\bt\("(\w+)"/g, /\bkey: "(\w+)"/g, /\? "(\w+)" : "(\w+)"/g]) {
        for (const match of code.matchAll(pattern)) named.push(...match.slice(1));
      }
    }
    for (const status of ["ready", "not_loaded", "loading", "failed"]) named.push(`status_${status}`);
    assert.ok(named.length > 40, `only ${named.length} keys found: the patterns have gone stale`);
    const missing = named.filter((key) => !(key in STRINGS.en));
    assert.deepEqual(missing, []);
  });
});

describe("t", () => {
  test("replaces each {name} that values has, converted to text", () => {
    assert.equal(t("overlapValue", { shared: 2, k: 3 }), "2 of the top 3");
    assert.equal(t("httpError", { status: 429 }), "HTTP 429");
    assert.equal(t("correlationValue", { rho: "0.50", n: 0 }), "0.50 over 0 documents both ranked");
  });

  test("leaves a placeholder without a value as it is", () => {
    assert.equal(t("overlapValue", { shared: 1 }), "1 of the top {k}");
    assert.equal(t("httpError"), "HTTP {status}");
  });

  test("values are inserted once, not expanded again", () => {
    assert.equal(t("networkError", { message: "{message} $& $1" }), "Could not reach the server: {message} $& $1");
  });

  test("an unknown key is shown as itself", () => {
    assert.equal(t("no-such-key"), "no-such-key");
    assert.equal(t("status_sleeping"), "status_sleeping");
  });

  test("in Chinese after setLanguage, and the page's labels follow", () => {
    const text = fakeNode("data-i18n", "documents");
    const label = fakeNode("data-i18n-aria-label", "pages");
    setLanguage("zh", fakePage([text, label]));
    assert.equal(currentLanguage(), "zh");
    assert.equal(document.documentElement.lang, "zh-CN");
    assert.equal(document.title, "rerankd 试用台");
    assert.equal(text.textContent, "文档");
    assert.deepEqual(label.labels, { "aria-label": "页面" });
    assert.equal(t("ranked", { count: 3, models: "a, b" }), "已对 3 篇文档排序：a, b。");

    setLanguage("fr", fakePage([text]));
    assert.equal(currentLanguage(), "en");
    assert.equal(document.documentElement.lang, "en");
    assert.equal(text.textContent, "Documents");
  });
});

describe("preferredLanguage", () => {
  test("the first preference the page has, by its base language, any case", () => {
    assert.equal(preferredLanguage(["zh-CN", "en"]), "zh");
    assert.equal(preferredLanguage(["fr-FR", "ZH-tw", "en"]), "zh");
    assert.equal(preferredLanguage(["en-GB", "zh"]), "en");
  });

  test("English when none is there", () => {
    assert.equal(preferredLanguage(["fr", "de-DE"]), "en");
    assert.equal(preferredLanguage([]), "en");
  });
});

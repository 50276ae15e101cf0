// render.js's pure parts: which best window is shown, and which part of a long document a folded result shows.
// (Importing render.js needs no DOM: it touches document only when it builds elements.)
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { CONTEXT_BEFORE, FOLD_AT, foldRange, spanOf } from "../../../src/rerankd/web/static/render.js";

describe("spanOf", () => {
  test("a valid window that is part of the document", () => {
    assert.deepEqual(spanOf({ span: { start: 0, end: 5 } }, 10), { start: 0, end: 5 });
    assert.deepEqual(spanOf({ span: { start: 5, end: 10 } }, 10), { start: 5, end: 10 });
    assert.deepEqual(spanOf({ span: { start: 3, end: 4 } }, 10), { start: 3, end: 4 });
  });

  test("the whole document is no window", () => {
    assert.equal(spanOf({ span: { start: 0, end: 10 } }, 10), null);
  });

  test("no span, or one that is out of range, empty, reversed or not made of integers", () => {
    for (const span of [
      undefined,
      null,
      { start: -1, end: 3 },
      { start: 2, end: 11 },
      { start: 4, end: 4 },
      { start: 5, end: 2 },
      { start: 1.5, end: 3 },
      { start: "1", end: 3 },
      { start: 1 },
    ]) {
      assert.equal(spanOf({ span }, 10), null, JSON.stringify(span));
    }
    assert.equal(spanOf(null, 10), null);
    assert.equal(spanOf(undefined, 10), null);
  });
});

describe("foldRange", () => {
  const words = (count) => Array.from("word ".repeat(count)); // 5 code points a word, a space after each

  test("a document up to FOLD_AT code points, or an expanded one, shows whole", () => {
    assert.deepEqual(foldRange(Array.from("x".repeat(FOLD_AT)), null, false), { from: 0, to: FOLD_AT });
    assert.deepEqual(foldRange(words(200), { start: 900, end: 910 }, true), { from: 0, to: 1000 });
  });

  test("a longer one is cut at FOLD_AT, from its start, when the window ends within the fold", () => {
    assert.deepEqual(foldRange(words(200), null, false), { from: 0, to: FOLD_AT });
    assert.deepEqual(foldRange(words(200), { start: 10, end: FOLD_AT }, false), { from: 0, to: FOLD_AT });
  });

  test("a window past the fold: the excerpt starts at a word up to CONTEXT_BEFORE before it", () => {
    // start 503: 80 before is 423, inside the word at 420..424 ("word" then a space at 424): from 425
    assert.deepEqual(foldRange(words(200), { start: 503, end: 520 }, false), {
      from: 425,
      to: 425 + FOLD_AT,
    });
  });

  test("with no space in the context, the excerpt starts exactly CONTEXT_BEFORE before the window", () => {
    const chars = Array.from("x".repeat(1000));
    assert.deepEqual(foldRange(chars, { start: 600, end: 650 }, false), {
      from: 600 - CONTEXT_BEFORE,
      to: 600 - CONTEXT_BEFORE + FOLD_AT,
    });
  });

  test("a window longer than the fold shows whole, and the excerpt never runs past the end", () => {
    const chars = Array.from("x".repeat(2000));
    assert.deepEqual(foldRange(chars, { start: 400, end: 1200 }, false), { from: 320, to: 1200 });
    assert.deepEqual(foldRange(chars, { start: 1900, end: 2000 }, false), { from: 1820, to: 2000 });
  });

  test("counts code points, not UTF-16 units", () => {
    const chars = Array.from("😀".repeat(FOLD_AT + 1)); // each is two UTF-16 units
    assert.equal(chars.length, FOLD_AT + 1);
    assert.deepEqual(foldRange(chars, null, false), { from: 0, to: FOLD_AT });
  });
});

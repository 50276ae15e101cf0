// compare.js: how two rankings (lists of original indexes, best first) agree.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { spearman, topKOverlap } from "../../../src/rerankd/web/static/compare.js";

describe("topKOverlap", () => {
  test("counts the shared indexes among the k best, k the shorter list's length", () => {
    assert.deepEqual(topKOverlap([0, 1, 2, 3], [3, 2, 1, 0]), { shared: 4, k: 4 });
    assert.deepEqual(topKOverlap([0, 1, 2, 3], [1, 3]), { shared: 1, k: 2 }); // a's two best are 0 and 1
    assert.deepEqual(topKOverlap([4, 5, 6], [1, 2, 3]), { shared: 0, k: 3 });
  });

  test("order within the top k does not matter", () => {
    assert.deepEqual(topKOverlap([2, 0, 1], [1, 2, 0]), { shared: 3, k: 3 });
  });

  test("an empty list has k 0", () => {
    assert.deepEqual(topKOverlap([], [1, 2]), { shared: 0, k: 0 });
    assert.deepEqual(topKOverlap([], []), { shared: 0, k: 0 });
  });
});

describe("spearman", () => {
  test("the same order is 1, the reversed order -1", () => {
    assert.deepEqual(spearman([3, 1, 4, 0, 2], [3, 1, 4, 0, 2]), { rho: 1, n: 5 });
    assert.deepEqual(spearman([0, 1, 2, 3], [3, 2, 1, 0]), { rho: -1, n: 4 });
  });

  test("1 - 6·Σd² / (n(n²-1)) over the positions", () => {
    // d = (0, 1, -1): Σd² = 2, n = 3 → 1 - 12/24
    assert.deepEqual(spearman([0, 1, 2], [0, 2, 1]), { rho: 0.5, n: 3 });
    // d = (-2, 1, 1): Σd² = 6 → 1 - 36/24
    assert.deepEqual(spearman([0, 1, 2], [1, 2, 0]), { rho: -0.5, n: 3 });
    // n = 4, one adjacent swap: Σd² = 2 → 1 - 12/60
    assert.equal(spearman([0, 1, 2, 3], [1, 0, 2, 3]).rho, 0.8);
  });

  test("positions are taken within the documents both lists rank, not the full lists", () => {
    // With Top N, each list holds only its model's best: 9 and 8 are each in one list only, so the common
    // set is {1, 2, 3}, in the same order in both, whatever their absolute positions.
    assert.deepEqual(spearman([9, 1, 2, 3], [1, 8, 2, 3]), { rho: 1, n: 3 });
    assert.deepEqual(spearman([1, 2, 3, 7], [7, 3, 2, 1, 0]), { rho: -1, n: 4 });
  });

  test("is symmetric", () => {
    const a = [5, 0, 3, 1, 4, 2];
    const b = [0, 1, 2, 5, 3, 4];
    assert.deepEqual(spearman(a, b), spearman(b, a));
  });

  test("ties cannot occur: equal scores still hold distinct positions in the order the server sent", () => {
    // Two models that scored documents 1 and 2 alike may list them either way round: that is a swap.
    assert.equal(spearman([0, 1, 2], [0, 2, 1]).rho, 0.5);
  });

  test("rho is null with fewer than two documents in common", () => {
    assert.deepEqual(spearman([], []), { rho: null, n: 0 });
    assert.deepEqual(spearman([1], [1]), { rho: null, n: 1 });
    assert.deepEqual(spearman([1, 2], [2, 3]), { rho: null, n: 1 });
    assert.deepEqual(spearman([0, 1], [2, 3]), { rho: null, n: 0 });
  });

  test("two documents in common: 1 or -1", () => {
    assert.deepEqual(spearman([0, 1], [0, 1]), { rho: 1, n: 2 });
    assert.deepEqual(spearman([0, 1], [1, 0]), { rho: -1, n: 2 });
  });
});

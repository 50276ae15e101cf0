// @ts-check
// How two rankings of the same documents agree. A ranking is the list of original indexes, best first;
// with Top N set, the lists hold only each model's N best, so both measures say what they cover.

/**
 * How many of the k best are the same in both, k being the shorter list's length.
 * @param {readonly number[]} a
 * @param {readonly number[]} b
 * @returns {{shared: number, k: number}}
 */
export function topKOverlap(a, b) {
  const k = Math.min(a.length, b.length);
  const top = new Set(a.slice(0, k));
  return { shared: b.slice(0, k).filter((index) => top.has(index)).length, k };
}

/** Spearman's rank correlation over the documents both lists rank (their order within that common set);
 * rho is null with fewer than two such documents.
 * @param {readonly number[]} a
 * @param {readonly number[]} b
 * @returns {{rho: number | null, n: number}}
 */
export function spearman(a, b) {
  const inB = new Set(b);
  const common = new Set(a.filter((index) => inB.has(index)));
  const n = common.size;
  if (n < 2) return { rho: null, n };
  /** @type {(list: readonly number[]) => Map<number, number>} */
  const positions = (list) => new Map(list.filter((index) => common.has(index)).map((index, rank) => [index, rank]));
  const rankA = positions(a);
  const rankB = positions(b);
  let squares = 0;
  for (const index of common) {
    const difference = /** @type {number} */ (rankA.get(index)) - /** @type {number} */ (rankB.get(index));
    squares += difference ** 2;
  }
  return { rho: 1 - (6 * squares) / (n * (n * n - 1)), n };
}

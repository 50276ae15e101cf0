// console-format.js: how the console shows values, filters and sorts keys, lays out days and chart axes, and
// writes CSV the way the server's exports do.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  addDays,
  barHeight,
  csvCell,
  csvOf,
  dailySeries,
  fileNameOf,
  filterKeys,
  formatCount,
  formatMoney,
  formatMs,
  formatRate,
  formatTime,
  niceScale,
  sortKeys,
} from "../../../src/rerankd/web/static/console-format.js";

/** A key as GET /admin/keys lists it, with some fields given. */
const key = (fields) => ({
  id: 1, name: "k", prefix: "rk-AAAAAAAA", state: "active", models: null, budget: null, spent: "0",
  reserved: "0", remaining: null, rpm: null, tpm: null, expires_at: null, disabled: false, revoked_at: null,
  created_at: "2027-01-01T00:00:00Z", last_used_at: null, ...fields,
});

describe("formatting", () => {
  test("counts are grouped, none is a dash", () => {
    assert.equal(formatCount(1234567), "1,234,567");
    assert.equal(formatCount(1234567, "zh"), "1,234,567");
    assert.equal(formatCount(0), "0");
    assert.equal(formatCount(null), "—");
    assert.equal(formatCount(Number.NaN), "—");
  });

  test("money stays the server's exact text, its integer part grouped", () => {
    assert.equal(formatMoney("1234567.000000001"), "1,234,567.000000001");
    assert.equal(formatMoney("0.25"), "0.25");
    assert.equal(formatMoney("-1000"), "-1,000");
    assert.equal(formatMoney("12"), "12");
    assert.equal(formatMoney(null), "—");
    assert.equal(formatMoney(""), "—");
  });

  test("times in UTC to the minute", () => {
    assert.equal(formatTime("2027-03-04T05:06:07.891Z"), "2027-03-04 05:06 UTC");
    assert.equal(formatTime("2027-03-04T08:06:00+03:00"), "2027-03-04 05:06 UTC");
    assert.equal(formatTime(null), "—");
    assert.equal(formatTime("not a time"), "not a time");
  });

  test("latencies and rates", () => {
    assert.equal(formatMs(0.4213), "0.42 ms");
    assert.equal(formatMs(12.34), "12.3 ms");
    assert.equal(formatMs(1234.5), "1,235 ms");
    assert.equal(formatMs(null), "—");
    assert.equal(formatRate(0.025), "2.5%");
    assert.equal(formatRate(0), "0.0%");
    assert.equal(formatRate(null), "—");
  });
});

describe("the keys table", () => {
  const keys = [
    key({ id: 1, name: "Team B", prefix: "rk-bbbbbbbb", budget: "3", last_used_at: "2027-01-02T00:00:00Z" }),
    key({ id: 2, name: "team a", prefix: "rk-aaaaaaaa", budget: "10", state: "revoked" }),
    key({ id: 3, name: "ops", prefix: "rk-TEAMcccc", budget: null, last_used_at: "2027-01-01T00:00:00Z" }),
  ];

  test("filtered by name or prefix, any case, and by state", () => {
    assert.deepEqual(filterKeys(keys, "team", "").map((k) => k.id), [1, 2, 3]);
    assert.deepEqual(filterKeys(keys, " TEAM ", "active").map((k) => k.id), [1, 3]);
    assert.deepEqual(filterKeys(keys, "", "revoked").map((k) => k.id), [2]);
    assert.deepEqual(filterKeys(keys, "nobody", "").map((k) => k.id), []);
  });

  test("money sorts as numbers, not as text; no value goes last either way", () => {
    assert.deepEqual(sortKeys(keys, "budget", "ascending").map((k) => k.id), [1, 2, 3]);
    assert.deepEqual(sortKeys(keys, "budget", "descending").map((k) => k.id), [2, 1, 3]);
  });

  test("text sorts without case, times by time", () => {
    assert.deepEqual(sortKeys(keys, "name", "ascending").map((k) => k.id), [3, 2, 1]);
    assert.deepEqual(sortKeys(keys, "last_used_at", "descending").map((k) => k.id), [1, 3, 2]);
    assert.deepEqual(sortKeys(keys, "last_used_at", "ascending").map((k) => k.id), [3, 1, 2]);
  });

  test("ties keep the keys' order, and the list given is not changed", () => {
    const same = [key({ id: 2 }), key({ id: 1 }), key({ id: 3 })];
    assert.deepEqual(sortKeys(same, "spent", "descending").map((k) => k.id), [1, 2, 3]);
    assert.deepEqual(same.map((k) => k.id), [2, 1, 3]);
  });
});

describe("days and the chart's scale", () => {
  test("addDays crosses months and years", () => {
    assert.equal(addDays("2027-01-31", 1), "2027-02-01");
    assert.equal(addDays("2027-01-01", -1), "2026-12-31");
    assert.equal(addDays("2028-02-28", 1), "2028-02-29");
  });

  test("every day of the period, the days without calls as zeros", () => {
    const groups = [
      { group: "2027-01-02", calls: 3, total_tokens: 120, cost: "0.75" },
      { group: "2027-01-04", calls: 1, total_tokens: 9, cost: "0.25" },
    ];
    assert.deepEqual(dailySeries(groups, "2027-01-01", "2027-01-04"), [
      { day: "2027-01-01", calls: 0, tokens: 0, cost: 0 },
      { day: "2027-01-02", calls: 3, tokens: 120, cost: 0.75 },
      { day: "2027-01-03", calls: 0, tokens: 0, cost: 0 },
      { day: "2027-01-04", calls: 1, tokens: 9, cost: 0.25 },
    ]);
    assert.equal(dailySeries([], "2027-01-01", "2027-12-31", 30).length, 30);
    assert.equal(dailySeries([], "2027-01-01", "2027-12-31", 30)[29].day, "2027-12-31");
    assert.deepEqual(dailySeries([], "2027-01-02", "2027-01-01"), []);
  });

  test("an axis of round steps that reaches the largest value", () => {
    assert.deepEqual(niceScale(7), { max: 8, step: 2, ticks: [0, 2, 4, 6, 8] });
    assert.deepEqual(niceScale(100), { max: 100, step: 50, ticks: [0, 50, 100] });
    assert.deepEqual(niceScale(0.009), { max: 0.01, step: 0.005, ticks: [0, 0.005, 0.01] });
    assert.deepEqual(niceScale(0.3).ticks, [0, 0.1, 0.2, 0.3]);
    assert.deepEqual(niceScale(0), { max: 1, step: 0.5, ticks: [0, 0.5, 1] });
    for (const max of [1, 3, 9.99, 12, 999, 1001, 123456]) {
      const scale = niceScale(max);
      assert.ok(scale.max >= max && scale.ticks.length <= 6, `${max}: ${JSON.stringify(scale)}`);
    }
  });

  test("bars in proportion, never negative nor past the top", () => {
    const scale = niceScale(8);
    assert.equal(barHeight(4, scale, 200), 100);
    assert.equal(barHeight(8, scale, 200), 200);
    assert.equal(barHeight(0, scale, 200), 0);
    assert.equal(barHeight(-3, scale, 200), 0);
    assert.equal(barHeight(99, scale, 200), 200);
  });
});

describe("CSV", () => {
  test("cells as the server's exports write them", () => {
    assert.equal(csvCell(12), "12");
    assert.equal(csvCell(null), "");
    assert.equal(csvCell("plain"), "plain");
    assert.equal(csvCell("a, b"), '"a, b"');
    assert.equal(csvCell('say "hi"'), '"say ""hi"""');
    assert.equal(csvCell("two\nlines"), '"two\nlines"');
    for (const start of ["=", "+", "-", "@", "\t"]) assert.equal(csvCell(`${start}SUM(A1)`), `'${start}SUM(A1)`);
    assert.equal(csvCell("\rx"), `"'\rx"`);
    assert.equal(csvCell("0.25"), "0.25"); // money text stays exact
  });

  test("a table with CRLF line ends, cells in the header's order", () => {
    const rows = [{ model: "bm25", calls: 2, cost: "0.5" }, { cost: "0", model: "=cmd", calls: 0 }];
    assert.equal(csvOf(["model", "calls", "cost"], rows), "model,calls,cost\r\nbm25,2,0.5\r\n'=cmd,0,0\r\n");
    assert.equal(csvOf(["model"], []), "model\r\n");
  });

  test("the file name of a download, only when it is a plain one", () => {
    assert.equal(fileNameOf('attachment; filename="rerankd-usage-by-day.csv"', "x.csv"), "rerankd-usage-by-day.csv");
    assert.equal(fileNameOf('attachment; filename="../../etc/passwd"', "x.csv"), "x.csv");
    assert.equal(fileNameOf(null, "x.csv"), "x.csv");
  });
});

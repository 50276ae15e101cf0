// @ts-check
// The usage chart: one bar per day as an inline SVG built node by node (no library, no markup parsed). The
// numbers it needs come from console-format.js; every label is set as text.

import { barHeight, niceScale } from "./console-format.js";

/** @typedef {import("./console-format.js").Day} Day */

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720;
const HEIGHT = 240;
const LEFT = 64; // room for the axis labels
const BOTTOM = 28; // room for the day labels
const TOP = 10;

/**
 * An SVG element with attributes (and text, set as text).
 * @param {string} tag
 * @param {Record<string, string | number>} attributes
 * @param {string} [text]
 * @returns {SVGElement}
 */
function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Draw days into container: a bar per day for the metric, the axis with its ticks, and every few days a
 * label; each bar says its day and value in its title (shown on hover, read by screen readers).
 * @param {HTMLElement} container
 * @param {readonly Day[]} days
 * @param {"calls" | "tokens" | "cost"} metric
 * @param {{label: string, format: (value: number) => string}} words the chart's name and how to show a value
 */
export function renderChart(container, days, metric, words) {
  const values = days.map((day) => day[metric]);
  const scale = niceScale(Math.max(0, ...values));
  const plot = HEIGHT - TOP - BOTTOM;
  const slot = (WIDTH - LEFT) / Math.max(1, days.length);
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    class: "chart",
    "data-metric": metric,
    "data-max": scale.max,
  });
  chart.append(svg("title", {}, words.label));
  for (const tick of scale.ticks) {
    const y = TOP + plot - barHeight(tick, scale, plot);
    chart.append(svg("line", { x1: LEFT, x2: WIDTH, y1: y, y2: y, class: "grid" }));
    chart.append(svg("text", { x: LEFT - 6, y: y + 4, "text-anchor": "end", class: "tick" }, words.format(tick)));
  }
  const every = Math.max(1, Math.ceil(days.length / 8)); // at most 8 day labels
  days.forEach((day, position) => {
    const height = barHeight(day[metric], scale, plot);
    const x = LEFT + position * slot;
    const bar = svg("rect", {
      x: x + slot * 0.15,
      y: TOP + plot - height,
      width: Math.max(1, slot * 0.7),
      height,
      class: "day-bar",
      "data-day": day.day,
      "data-value": day[metric],
    });
    bar.append(svg("title", {}, `${day.day}: ${words.format(day[metric])}`));
    chart.append(bar);
    if (position % every === 0) {
      const label = svg("text", { x: x + slot / 2, y: HEIGHT - 8, "text-anchor": "middle", class: "day" }, day.day.slice(5));
      chart.append(label);
    }
  });
  // Read out: the days with something, not every empty one.
  const shown = days.filter((day) => day[metric] > 0).map((day) => `${day.day} ${words.format(day[metric])}`);
  chart.setAttribute("aria-label", `${words.label}: ${shown.join(", ") || words.format(0)}`);
  container.replaceChildren(chart);
}

// The history chart: size (bars) and duration (line) of the last backups, as inline SVG.
// Failed backups are red marks on the baseline, so a failing streak shows at a glance.

import { durationSeconds, formatDuration, formatSize, formatTime } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 200;
const PAD = { top: 16, right: 52, bottom: 22, left: 58 };

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/** Draws `backups` (newest first, as the API lists them) into `container`. */
export function drawHistory(container, backups) {
  container.replaceChildren();
  const history = [...backups].reverse();
  if (history.length === 0) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No backup yet: the chart fills in as backups are taken.";
    container.append(empty);
    return;
  }
  const sizes = history.map((b) => (b.status === "done" ? b.size || 0 : 0));
  const durations = history.map((b) => (b.status === "done" ? durationSeconds(b) : null));
  const maxSize = Math.max(1, ...sizes);
  const maxDuration = Math.max(0.001, ...durations.filter((d) => d !== null));
  const failed = history.filter((b) => b.status === "error").length;

  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotWidth / history.length;
  const barWidth = Math.max(2, Math.min(28, slot * 0.7));
  const x = (i) => PAD.left + slot * i + slot / 2;
  const ySize = (v) => PAD.top + plotHeight * (1 - v / maxSize);
  const yDuration = (v) => PAD.top + plotHeight * (1 - v / maxDuration);

  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    class: "history",
    "aria-labelledby": "history-chart-title",
  });
  const done = history.filter((b) => b.status === "done");
  const summary =
    `Last ${history.length} backups: ${done.length} done, ${failed} failed; ` +
    `largest ${formatSize(maxSize)}, longest ${formatDuration(maxDuration)}.`;
  chart.append(svg("title", { id: "history-chart-title" }, summary));

  // Axes and their scales: size on the left, duration on the right.
  const baseline = PAD.top + plotHeight;
  chart.append(svg("line", { x1: PAD.left, y1: baseline, x2: WIDTH - PAD.right, y2: baseline, class: "axis" }));
  chart.append(svg("line", { x1: PAD.left, y1: PAD.top, x2: WIDTH - PAD.right, y2: PAD.top, class: "grid" }));
  chart.append(svg("text", { x: PAD.left - 6, y: PAD.top + 4, class: "scale size", "text-anchor": "end" }, formatSize(maxSize)));
  chart.append(svg("text", { x: PAD.left - 6, y: baseline + 4, class: "scale", "text-anchor": "end" }, "0"));
  chart.append(svg("text", { x: WIDTH - PAD.right + 6, y: PAD.top + 4, class: "scale duration" }, formatDuration(maxDuration)));
  chart.append(svg("text", { x: PAD.left, y: HEIGHT - 4, class: "scale" }, "oldest"));
  chart.append(svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 4, class: "scale", "text-anchor": "end" }, "newest"));

  history.forEach((backup, i) => {
    const when = formatTime(backup.created_at);
    if (backup.status === "done") {
      const top = ySize(sizes[i]);
      const bar = svg("rect", {
        x: x(i) - barWidth / 2,
        y: top,
        width: barWidth,
        height: Math.max(1, baseline - top),
        class: "bar",
      });
      bar.append(svg("title", {}, `${when}: ${formatSize(backup.size)} in ${formatDuration(durations[i])}`));
      chart.append(bar);
    } else if (backup.status === "error") {
      const mark = svg("rect", { x: x(i) - barWidth / 2, y: baseline - 10, width: barWidth, height: 10, class: "failed" });
      mark.append(svg("title", {}, `${when}: failed`));
      chart.append(mark);
    } else {
      const mark = svg("rect", { x: x(i) - barWidth / 2, y: baseline - 6, width: barWidth, height: 6, class: "active" });
      mark.append(svg("title", {}, `${when}: ${backup.status}`));
      chart.append(mark);
    }
  });

  // Duration: a line through the done backups.
  const points = history
    .map((_, i) => (durations[i] === null ? null : `${x(i).toFixed(1)},${yDuration(durations[i]).toFixed(1)}`))
    .filter((p) => p !== null);
  if (points.length > 1) chart.append(svg("polyline", { points: points.join(" "), class: "duration-line" }));
  history.forEach((_, i) => {
    if (durations[i] !== null) chart.append(svg("circle", { cx: x(i), cy: yDuration(durations[i]), r: 3, class: "duration-dot" }));
  });

  container.append(chart);
  const caption = document.createElement("p");
  caption.className = "hint";
  caption.textContent = summary;
  container.append(caption);
}

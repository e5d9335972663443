// Building the page from API values: always as text nodes, never as HTML.

/** `el("td", {class: "x"}, "text", child)`: strings become text nodes. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

/** Clears the errors of a form (or any element holding `[data-error-for]`). */
export function clearErrors(root) {
  for (const slot of root.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const input of root.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/** Shows an ApiError next to the field it names, else at the form's level. */
export function showError(root, error) {
  const field = error.field || "";
  let slot = root.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
  if (!slot) slot = root.querySelector('[data-error-for=""]');
  slot.textContent = error.message;
  const input = slot.closest(".field")?.querySelector("input, select");
  if (input && field) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

/** Runs `work` with `button` disabled and marked busy, so a click cannot be doubled. */
export async function busy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// -- formats ------------------------------------------------------------------------

const BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

export function browserTimeZone() {
  return BROWSER_ZONE;
}

/** `2026-11-25 03:40 UTC`, or in `timeZone` with its abbreviation. */
export function formatTime(value, timeZone = "UTC", seconds = false) {
  if (!value) return "–";
  const moment = new Date(value);
  if (Number.isNaN(moment.getTime())) return String(value);
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: seconds ? "2-digit" : undefined,
    hourCycle: "h23",
    timeZoneName: "short",
  }).formatToParts(moment);
  const part = (type) => parts.find((p) => p.type === type)?.value ?? "";
  const time = `${part("hour")}:${part("minute")}${seconds ? `:${part("second")}` : ""}`;
  const zone = timeZone === "UTC" ? "UTC" : part("timeZoneName");
  return `${part("year")}-${part("month")}-${part("day")} ${time} ${zone}`;
}

/** `12.3 MB` (powers of 1000, like the CLI); `–` when unknown. */
export function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

export function durationSeconds(backup) {
  if (!backup.started_at || !backup.finished_at) return null;
  return Math.max(0, (new Date(backup.finished_at) - new Date(backup.started_at)) / 1000);
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function hourLabel(hour) {
  return `${String(hour).padStart(2, "0")}:00`;
}

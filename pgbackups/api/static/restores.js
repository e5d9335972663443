// Restores run by the stack (POST /v1/databases/{db}/restores): the Restore dialog a done
// backup's row and the point-in-time form open, and the Restores list of the database, newest
// first, followed live while one is scheduled or running. The target's URL goes to the API
// once, from a password field, and is never shown again: a restore shows `host:port/dbname`.

import { may } from "./access.js";
import { ApiError, api } from "./api.js";
import { $, browserTimeZone, busy, clearErrors, el, formatDuration, formatTime, showError } from "./dom.js";

const POLL_MS = 1000;
const ACTIVE = new Set(["scheduled", "running"]);

const list = {
  database: null,
  restores: [], // rows shown, newest first
  nextCursor: null,
  timer: null,
  shown: 0, // bumped on every open and close: a late answer of a left database is dropped
};

// -- the Restores list ------------------------------------------------------------------

/** The database's Restores list, loaded and followed until closeRestores(). */
export async function openRestores(database) {
  closeRestores();
  list.database = database;
  const shown = list.shown;
  try {
    await loadRestores(true, shown);
  } catch (error) {
    if (shown === list.shown) $("#restores-error").textContent = error.message;
  }
}

/** The view is left (another database, another page, signed out): nothing of it stays. */
export function closeRestores() {
  list.shown += 1;
  stopPolling();
  list.database = null;
  list.restores = [];
  list.nextCursor = null;
  $("#restores-table tbody").replaceChildren();
  $("#restores-table").hidden = true;
  $("#restores-empty").hidden = true;
  $("#restores-more").hidden = true;
  $("#restores-error").textContent = "";
  $("#restores-note").textContent = "";
}

async function loadRestores(reset, shown) {
  const page = await api.restores(list.database, reset ? null : list.nextCursor);
  if (shown !== list.shown) return;
  list.restores = reset ? page.restores : [...list.restores, ...page.restores.filter((r) => !list.restores.some((s) => s.id === r.id))];
  list.nextCursor = page.next_cursor;
  renderRestores();
}

function renderRestores() {
  $("#restores-table tbody").replaceChildren(...list.restores.flatMap(restoreRows));
  $("#restores-table").hidden = list.restores.length === 0;
  $("#restores-empty").hidden = list.restores.length !== 0;
  $("#restores-more").hidden = !list.nextCursor;
  schedulePolling();
}

/** `37 of 40 entries`; a point in time has no entries to count until it is moved. */
function progressText(restore) {
  const { restored, total } = restore.progress || {};
  if (restored === undefined || restored === null) return "–";
  if (total === null || total === undefined) return restored ? `${restored} entries` : "–";
  return `${restored} of ${total} entries`;
}

function moment(value) {
  if (!value) return "–";
  return el("time", { datetime: value, title: formatTime(value, "UTC", true) }, formatTime(value, browserTimeZone(), true));
}

function sourceNodes(restore) {
  const what =
    restore.kind === "point_in_time"
      ? ["point in time ", restore.target_time ? moment(restore.target_time) : "latest"]
      : ["backup ", el("code", {}, restore.backup_id || "–")];
  const only = [];
  if (restore.tables?.length) only.push(el("span", { class: "only" }, `tables: ${restore.tables.join(", ")}`));
  if (restore.schemas?.length) only.push(el("span", { class: "only" }, `schemas: ${restore.schemas.join(", ")}`));
  return [...what, ...only];
}

/** A restore's row, and below it what it reports: its error and its warnings (a restore
 * that stopped halfway says there that the target may be partial). */
function restoreRows(restore) {
  const notes = [...(restore.status === "error" && restore.error ? [restore.error] : []), ...(restore.warnings || [])];
  const notesId = `restore-notes-${restore.id}`;
  const row = el(
    "tr",
    { "data-restore-id": restore.id, "data-status": restore.status, class: notes.length ? "has-reason" : undefined },
    el("td", { class: "id", "data-label": "ID" }, el("code", {}, restore.id)),
    el("td", { "data-label": "Restored" }, sourceNodes(restore)),
    el("td", { "data-label": "Into" }, el("code", {}, restore.target)),
    el("td", { "data-label": "Created at" }, moment(restore.created_at)),
    el("td", { "data-label": "Status", "aria-describedby": notes.length ? notesId : undefined }, el("span", { class: `status status-${restore.status}` }, restore.status)),
    el("td", { "data-label": "Runner" }, restore.runner || "–"),
    el("td", { class: "number", "data-label": "Progress" }, progressText(restore)),
    el("td", { class: "number", "data-label": "Duration (RTO)" }, formatDuration(restore.duration_seconds)),
  );
  if (!notes.length) return [row];
  const lines = notes.map((note, index) =>
    el("p", { class: index === 0 && restore.status === "error" ? "reason" : "warning" }, note),
  );
  return [row, el("tr", { class: "reason-row", "data-notes-for": restore.id }, el("td", { colspan: 8, id: notesId }, lines))];
}

function schedulePolling() {
  stopPolling();
  if (!list.restores.some((r) => ACTIVE.has(r.status))) return;
  const shown = list.shown;
  list.timer = setTimeout(() => poll(shown), POLL_MS);
}

function stopPolling() {
  if (list.timer !== null) clearTimeout(list.timer);
  list.timer = null;
}

async function poll(shown) {
  list.timer = null;
  if (shown !== list.shown) return;
  const active = list.restores.filter((r) => ACTIVE.has(r.status));
  const answers = await Promise.allSettled(active.map((r) => api.restore(list.database, r.id)));
  if (shown !== list.shown) return;
  const fresh = new Map();
  let failure = null;
  for (const answer of answers) {
    if (answer.status === "fulfilled") fresh.set(answer.value.id, answer.value);
    else failure = answer.reason;
  }
  list.restores = list.restores.map((r) => fresh.get(r.id) || r);
  // A failure (the network, the API) is said and retried at the next tick; a refused
  // token signs out, which closes the list.
  $("#restores-error").textContent = failure ? failure.message : "";
  renderRestores();
}

$("#restores-more").addEventListener("click", async (event) => {
  const shown = list.shown;
  $("#restores-error").textContent = "";
  await busy(event.currentTarget, async () => {
    try {
      await loadRestores(false, shown);
    } catch (error) {
      if (shown === list.shown) $("#restores-error").textContent = error.message;
    }
  });
});

/** A restore the API just accepted: first in the list, followed from now on. */
function follow(restore) {
  list.restores = [restore, ...list.restores.filter((r) => r.id !== restore.id)];
  renderRestores();
  $("#restores-note").textContent = `Restore ${restore.id} into ${restore.target} is ${restore.status}: it is followed below.`;
  $("#restores-card").scrollIntoView({ block: "nearest" });
}

// -- a point in time --------------------------------------------------------------------

let ranges = []; // the recoverable ranges the Continuous backups block shows, oldest first

/** The form under the recoverable ranges: shown while there is one to restore from. */
export function showPointInTime(shownRanges) {
  ranges = shownRanges;
  const block = $("#pitr-restore");
  const form = $("#pitr-restore-form");
  if (ranges.length === 0) {
    block.hidden = true;
    clearErrors(form);
    delete form.dataset.edited;
    $("#pitr-restore-time").value = "";
    return;
  }
  // access.js hides the block again for a token that may not restore.
  block.hidden = !may("restore");
  $("#pitr-restore-zone").textContent = browserTimeZone();
  const input = $("#pitr-restore-time");
  input.min = inputValue(new Date(ranges[0].from));
  input.max = inputValue(new Date(ranges[ranges.length - 1].to));
  // The latest second that can be restored, until someone picks another.
  if (!form.dataset.edited) input.value = input.max;
}

$("#pitr-restore-form").addEventListener("input", (event) => {
  event.currentTarget.dataset.edited = "true";
});

$("#pitr-restore-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const value = $("#pitr-restore-time").value;
  // A date-time input's value has no zone: `new Date()` reads it in the browser's.
  const moment = value ? new Date(value) : null;
  if (!moment || Number.isNaN(moment.getTime())) {
    showError(form, new ApiError(0, "missing", "Choose the date and time to restore to.", "target_time"));
    return;
  }
  const at = moment.getTime();
  if (!ranges.some((range) => new Date(range.from).getTime() <= at && at <= new Date(range.to).getTime())) {
    const message = `${formatTime(moment, browserTimeZone(), true)} is outside the recoverable ranges: choose a time inside one of them.`;
    showError(form, new ApiError(0, "outside_ranges", message, "target_time"));
    return;
  }
  const shown = formatTime(moment, browserTimeZone(), true);
  openRestoreDialog(
    list.database,
    { target_time: withOffset(moment) },
    `Restore ${list.database} as it was at ${shown}`,
    "The database is recovered to that second from its base backup and WAL, then moved into the database below.",
  );
});

function pad(number) {
  return String(number).padStart(2, "0");
}

/** `2026-12-06T11:40:13`: a moment as a date-time input shows it, in the browser's zone. */
function inputValue(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** RFC 3339 with the browser's offset at that moment: `2026-12-06T11:40:13+09:00`. */
function withOffset(date) {
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return `${inputValue(date)}${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
}

// -- the Restore dialog -----------------------------------------------------------------

const dialog = $("#restore-dialog");
const form = $("#restore-form");
let asked = null; // {database, source: {backup_id} | {target_time}} of the open dialog

/** Restore on a done backup's row (operate; in place needs admin and the typed name). */
export function restoreButton(database, backup) {
  if (backup.status !== "done") return null;
  const button = el("button", { type: "button", class: "small", "data-action": "restore" }, "Restore");
  button.addEventListener("click", () =>
    openRestoreDialog(database, { backup_id: backup.id }, `Restore backup ${backup.id}`, `Its archive ${backup.name}.pgsql is restored into the database below.`),
  );
  return button;
}

/** The dialog for one restore: `source` is {backup_id} or {target_time}. */
export function openRestoreDialog(database, source, title, description) {
  asked = { database, source };
  form.reset();
  clearErrors(form);
  $("#restore-title").textContent = title;
  $("#restore-source").textContent = description;
  $("#restore-confirm-field").hidden = true;
  $("#restore-submit").textContent = "Restore";
  $("#restore-submit").disabled = false;
  dialog.showModal();
  $("#restore-url").focus();
}

/** `a, b ,c` as ["a", "b", "c"]: names are separated by commas (a name may hold spaces). */
function names(text) {
  return text
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");
}

/** The API's 409 confirmation_required: said, then the database's name asked for, as
 * Heroku's CLI asks for it. Only admins may restore in place: others are told so. */
function askForConfirmation(error) {
  const { database } = asked;
  const slot = $('[data-error-for=""]', form);
  if (!may("restoreInPlace")) {
    slot.textContent = `${error.message}. Restoring into ${database} itself needs the admin role.`;
    return;
  }
  slot.textContent = error.message;
  $("#restore-confirm-label").textContent = `Type ${database} to restore into it`;
  $("#restore-confirm-field").hidden = false;
  $("#restore-submit").textContent = `Restore into ${database}`;
  $("#restore-submit").disabled = $("#restore-confirm").value !== database;
  $("#restore-confirm").focus();
}

$("#restore-confirm").addEventListener("input", () => {
  if (asked) $("#restore-submit").disabled = $("#restore-confirm").value !== asked.database;
});

$("#restore-cancel").addEventListener("click", () => dialog.close());

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!asked) return;
  const { database, source } = asked;
  clearErrors(form);
  const url = $("#restore-url").value;
  if (!url.trim()) {
    showError(form, new ApiError(0, "missing", "Enter the URL of the database to restore into.", "target_url"));
    return;
  }
  const restore = {
    ...source,
    target_url: url,
    tables: names($("#restore-tables").value),
    schemas: names($("#restore-schemas").value),
    clean: $("#restore-clean").checked,
  };
  if (!$("#restore-confirm-field").hidden) restore.confirm = $("#restore-confirm").value;
  const shown = list.shown;
  await busy($("#restore-submit"), async () => {
    try {
      const accepted = await api.createRestore(database, restore);
      asked = null;
      form.reset();
      dialog.close();
      if (shown === list.shown && list.database === database) follow(accepted);
    } catch (error) {
      if (error.code === "confirmation_required") askForConfirmation(error);
      else showError(form, error);
    }
  });
  // busy() enabled it again: a confirmation still untyped keeps it off.
  if (asked && !$("#restore-confirm-field").hidden) {
    $("#restore-submit").disabled = $("#restore-confirm").value !== asked.database;
  }
});

// The password field is emptied whenever the dialog closes, whichever way.
dialog.addEventListener("close", () => {
  $("#restore-url").value = "";
  asked = null;
});

// The pgbackups dashboard: sign-in, databases, and a database's Backups tab.
// Routes: #/ (databases), #/databases/<name> (its Backups tab), #/tokens and #/activity
// (admins: tokens.js, activity.js); any other hash shows the databases. What the signed-in
// token may do is decided in access.js.

import { forgetAccess, loadAccess } from "./access.js";
import { clearActivity, openActivity } from "./activity.js";
import { ApiError, api, forgetToken, onSignedOut, retentionBounds, signIn, storedToken } from "./api.js";
import { drawHistory } from "./chart.js";
import {
  $,
  browserTimeZone,
  busy,
  clearErrors,
  el,
  formatDuration,
  formatSize,
  formatTime,
  hourLabel,
  showError,
} from "./dom.js";
import { holdButton, protectionNodes } from "./holds.js";
import { closeRestores, openRestores, restoreButton, showPointInTime } from "./restores.js";
import { clearTokens, openTokens } from "./tokens.js";
import { closeVerification, openVerification, verificationBadge } from "./verification.js";

const PAGE_SIZE = 20;
const HISTORY_SIZE = 30;
const POLL_MS = 1000;
// Continuous backups move with every capture (each minute): a few seconds is fresh enough.
const PITR_POLL_MS = 5000;
const ACTIVE = new Set(["scheduled", "running"]);
const VIEWS = ["sign-in-view", "databases-view", "database-view", "tokens-view", "activity-view"];

const state = {
  database: null, // the database record shown in the Backups tab
  backups: [], // rows shown, newest first
  nextCursor: null,
  pollTimer: null,
  pitrTimer: null,
  pitrShown: null, // the base backups as last drawn, so a refresh redraws only what changed
  pitr: null, // the continuous backups last answered (the disable button keeps their window)
  generation: 0, // bumped on every navigation: late answers of a left view are dropped
  listSeq: 0, // bumped on every list request: only the latest one is shown
  historySeq: 0, // the same for the chart's list
  historyActive: new Set(), // backups the chart drew as scheduled or running
};

// -- views -----------------------------------------------------------------------------

function showView(id) {
  $("#loading").hidden = true;
  for (const view of VIEWS) $(`#${view}`).hidden = view !== id;
  $("#sign-out").hidden = id === "sign-in-view";
}

function signedOut(message) {
  stopPolling();
  stopPitrPolling();
  closeRestores();
  closeVerification();
  state.generation += 1;
  state.database = null;
  state.backups = [];
  // No data of the previous session stays in the page.
  $("#databases-table tbody").replaceChildren();
  $("#databases-table").hidden = true;
  $("#backups-table tbody").replaceChildren();
  $("#history-chart").replaceChildren();
  clearPitr();
  forgetAccess();
  clearTokens();
  clearActivity();
  $("#database-title").textContent = "";
  const form = $("#sign-in-form");
  clearErrors(form);
  form.reset();
  if (message) $('[data-error-for=""]', form).textContent = message;
  showView("sign-in-view");
  $("#token").focus();
}

onSignedOut(() => signedOut("Your token was refused (it may have changed): sign in again."));

function route() {
  state.generation += 1;
  stopPolling();
  stopPitrPolling();
  closeRestores();
  closeVerification();
  if (!storedToken()) {
    signedOut("");
    return;
  }
  loadAccess();
  if (location.hash === "#/tokens" || location.hash === "#/activity") {
    const page = location.hash.slice(2);
    showView(`${page}-view`);
    if (page === "tokens") openTokens(confirmAction);
    else openActivity();
    return;
  }
  const match = location.hash.match(/^#\/databases\/([^/]+)$/);
  if (match) {
    openDatabase(decodedName(match[1]));
  } else {
    openDatabases();
  }
}

/** The name in a hash, decoded; as typed when it is not valid percent-encoding (`%`). */
function decodedName(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

// -- sign-in ---------------------------------------------------------------------------

$("#sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const token = $("#token").value.trim();
  if (!token) {
    showError(form, new ApiError(0, "missing", "Enter the API token."));
    return;
  }
  performance.clearMarks();
  performance.mark("sign-in");
  await busy($('button[type="submit"]', form), async () => {
    try {
      const list = await signIn(token);
      $("#token").value = "";
      loadAccess();
      if (location.hash !== "" && location.hash !== "#/") {
        route();
      } else {
        state.generation += 1;
        renderDatabases(list.databases);
        showView("databases-view");
      }
    } catch (error) {
      forgetToken();
      const message =
        error.status === 401 || error.status === 403
          ? "This token was refused: check it and try again."
          : error.message;
      showError(form, new ApiError(error.status, error.code, message));
    }
  });
});

$("#sign-out").addEventListener("click", () => {
  forgetToken();
  location.hash = "#/";
  signedOut("");
});

// -- databases -------------------------------------------------------------------------

function scheduleText(schedule) {
  return schedule.enabled ? `Daily at ${hourLabel(schedule.hour)} ${schedule.timezone}` : "Disabled";
}

function statusBadge(status) {
  return el("span", { class: `status status-${status}` }, status);
}

const HEALTH_STATUSES = ["ok", "warning", "failing"];

/** ok, warning or failing; its reasons in the tooltip. A database never judged is ok. */
function healthBadge(health) {
  const status = HEALTH_STATUSES.includes(health?.status) ? health.status : "ok";
  const reasons = (health?.reasons || []).map((reason) => reason.message).join("\n");
  return el("span", { class: `health health-${status}`, title: reasons }, status);
}

/** The banner above a database that is not ok: its status and each reason, as text. */
function renderHealth(health) {
  const status = HEALTH_STATUSES.includes(health?.status) ? health.status : "ok";
  const banner = $("#health-banner");
  banner.hidden = status === "ok";
  banner.className = `health-banner health-banner-${status}`;
  const since = health?.since ? ` since ${formatTime(health.since, browserTimeZone(), true)}` : "";
  $("#health-title").textContent =
    status === "failing" ? `Backups are failing${since}` : status === "warning" ? `Needs attention${since}` : "";
  $("#health-reasons").replaceChildren(
    ...(status === "ok" ? [] : health.reasons || []).map((reason) =>
      el("li", { "data-code": reason.code }, reason.message),
    ),
  );
}

async function openDatabases() {
  const generation = state.generation;
  showView("databases-view");
  $("#databases-error").textContent = "";
  try {
    const list = await api.databases();
    if (generation === state.generation) renderDatabases(list.databases);
  } catch (error) {
    if (generation === state.generation) $("#databases-error").textContent = error.message;
  }
}

function renderDatabases(databases) {
  const rows = databases.map((database) => {
    const last = database.last_backup;
    const remove = el("button", { type: "button", class: "danger small", "data-action": "removeDatabase" }, "Remove");
    remove.addEventListener("click", () => removeDatabase(database.name, remove));
    return el(
      "tr",
      { "data-database": database.name },
      el("td", { "data-label": "Name" }, el("a", { href: `#/databases/${encodeURIComponent(database.name)}` }, database.name)),
      el("td", { "data-label": "Health" }, healthBadge(database.health)),
      el("td", { "data-label": "Schedule" }, scheduleText(database.schedule)),
      el(
        "td",
        { "data-label": "Last backup" },
        last
          ? [el("time", { datetime: last.created_at, title: formatTime(last.created_at, "UTC", true) }, formatTime(last.created_at, browserTimeZone(), true)), " ", statusBadge(last.status)]
          : "None yet",
      ),
      el("td", { "data-label": "Replica" }, database.has_replica ? "Yes" : "No"),
      el("td", { class: "row-actions" }, remove),
    );
  });
  $("#databases-table tbody").replaceChildren(...rows);
  $("#databases-table").hidden = databases.length === 0;
  $("#databases-empty").hidden = databases.length !== 0;
  performance.mark("databases-shown");
}

const addForm = $("#add-database-form");
function toggleAddForm(open) {
  addForm.hidden = !open;
  $("#add-database-toggle").setAttribute("aria-expanded", String(open));
  if (open) {
    $("#new-name").focus();
  } else {
    addForm.reset();
    clearErrors(addForm);
  }
}
$("#add-database-toggle").addEventListener("click", () => toggleAddForm(addForm.hidden));
$("#add-database-cancel").addEventListener("click", () => toggleAddForm(false));

addForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(addForm);
  const registration = { name: $("#new-name").value.trim(), url: $("#new-url").value };
  const replica = $("#new-replica-url").value;
  if (replica) registration.replica_url = replica;
  await busy($('button[type="submit"]', addForm), async () => {
    try {
      await api.addDatabase(registration);
      toggleAddForm(false);
      await openDatabases();
    } catch (error) {
      showError(addForm, error);
    }
  });
});

async function removeDatabase(name, button) {
  const confirmed = await confirmAction({
    title: `Remove ${name}?`,
    message: "Its schedule stops and its backups expire under its retention policy. This cannot be undone.",
    typed: name,
    action: "Remove database",
  });
  if (!confirmed) return;
  await busy(button, async () => {
    try {
      await api.removeDatabase(name);
      await openDatabases();
    } catch (error) {
      $("#databases-error").textContent = error.message;
    }
  });
}

// -- confirmation dialog ---------------------------------------------------------------

const dialog = $("#confirm-dialog");
function confirmAction({ title, message, typed = null, action = "Confirm" }) {
  $("#confirm-title").textContent = title;
  $("#confirm-message").textContent = message;
  const ok = $("#confirm-ok");
  ok.textContent = action;
  const input = $("#confirm-input");
  input.value = "";
  $("#confirm-typed").hidden = typed === null;
  if (typed !== null) {
    $("#confirm-input-label").textContent = `Type ${typed} to confirm`;
    ok.disabled = true;
    input.oninput = () => {
      ok.disabled = input.value !== typed;
    };
  } else {
    ok.disabled = false;
    input.oninput = null;
  }
  dialog.returnValue = "";
  dialog.showModal();
  (typed !== null ? input : ok).focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
  });
}

// -- a database's Backups tab ----------------------------------------------------------

async function openDatabase(name) {
  const generation = state.generation;
  showView("database-view");
  state.database = null;
  state.backups = [];
  state.historyActive = new Set();
  // Nothing of the database shown before stays in view until this one's record is in.
  $("#database-found").hidden = true;
  $("#database-missing").hidden = true;
  $(".crumbs").hidden = false;
  $("#database-loading").hidden = false;
  renderTrigger();
  $("#crumb-name").textContent = name;
  $("#database-title").textContent = name;
  $("#database-facts").textContent = "";
  renderHealth(null);
  $("#database-error").textContent = "";
  $("#trigger-error").textContent = "";
  $("#backups-table tbody").replaceChildren();
  $("#history-chart").replaceChildren();
  clearPitr();
  for (const form of [$("#schedule-form"), $("#retention-form")]) clearErrors(form);
  $("#next-run").textContent = "";
  try {
    const database = await api.database(name);
    if (generation !== state.generation) return;
    state.database = database;
    $("#database-loading").hidden = true;
    $("#database-found").hidden = false;
    renderTrigger();
    renderDatabaseFacts(database);
    renderHealth(database.health);
    renderSchedule(database.schedule);
    renderRetention(database.retention);
    // Continuous backups load beside the rest and fail on their own (loadPitr catches).
    loadPitr();
    openRestores(database.name);
    // A drill that ends changes the backups' Verified badges.
    openVerification(database, () => loadBackups(true).catch(() => {}));
    await Promise.all([loadBackups(true), loadHistory()]);
  } catch (error) {
    if (generation !== state.generation) return;
    $("#database-loading").hidden = true;
    if (error.status === 404 && state.database === null) {
      showMissing(name);
    } else {
      $("#database-error").textContent = error.message;
    }
  }
}

/** A name that is no database: that sentence and a way back, nothing else. */
function showMissing(name) {
  $(".crumbs").hidden = true;
  $("#database-missing-text").textContent = `No database named ${name}`;
  $("#database-missing").hidden = false;
}

const RUNNER_TEXT = {
  auto: "runner auto (Lambda, or Fargate for a backup that outgrows it)",
  lambda: "runner lambda",
  fargate: "runner fargate",
};

function renderDatabaseFacts(database) {
  const facts = [
    `Compression ${database.compression}`,
    database.has_replica ? "backs up from its replica when reachable" : "no replica",
    RUNNER_TEXT[database.runner] || `runner ${database.runner}`,
    `registered ${formatTime(database.created_at, browserTimeZone())}`,
  ];
  $("#database-facts").textContent = facts.join(" · ");
}

// Schedule ---------------------------------------------------------------------------

function fillScheduleControls() {
  const hours = $("#schedule-hour");
  hours.replaceChildren(...Array.from({ length: 24 }, (_, hour) => el("option", { value: hour }, hourLabel(hour))));
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  $("#timezones").replaceChildren(...[...new Set(["UTC", ...zones])].map((zone) => el("option", { value: zone })));
}

function renderSchedule(schedule) {
  $("#schedule-form .saved").textContent = "";
  $("#schedule-enabled").checked = schedule.enabled;
  $("#schedule-hour").value = String(schedule.hour);
  // A disabled schedule has no zone worth keeping: offer the browser's own.
  $("#schedule-timezone").value = schedule.enabled ? schedule.timezone : browserTimeZone();
  renderNextRun(schedule);
}

function renderNextRun(schedule) {
  const next = $("#next-run");
  if (!schedule.enabled || !schedule.next_run_at) {
    next.textContent = "Scheduled backups are disabled.";
    return;
  }
  const local = browserTimeZone();
  next.replaceChildren(
    "Next run: ",
    el("strong", {}, formatTime(schedule.next_run_at, "UTC")),
    local === "UTC" ? "" : ` (${formatTime(schedule.next_run_at, local)} in your time zone, ${local})`,
  );
}

$("#schedule-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  $(".saved", form).textContent = "";
  const name = state.database?.name;
  if (!name) return;
  const schedule = {
    enabled: $("#schedule-enabled").checked,
    hour: Number($("#schedule-hour").value),
    timezone: $("#schedule-timezone").value.trim(),
  };
  await busy($('button[type="submit"]', form), async () => {
    try {
      const saved = await api.putSchedule(name, schedule);
      state.database.schedule = saved;
      renderSchedule(saved);
      $(".saved", form).textContent = "Schedule updated.";
    } catch (error) {
      showError(form, error);
    }
  });
});

// Retention ----------------------------------------------------------------------------

const RETENTION = ["daily", "weekly", "monthly", "manual"];
let bounds = null;

function renderRetention(retention) {
  const form = $("#retention-form");
  $(".saved", form).textContent = "";
  for (const name of RETENTION) $(`#retention-${name}`).value = String(retention[name]);
  if (bounds === null) {
    bounds = retentionBounds().catch(() => null);
  }
  bounds.then((known) => {
    if (!known) return;
    for (const name of RETENTION) {
      const { minimum, maximum } = known[name] || {};
      if (minimum === undefined || maximum === undefined) continue;
      // Shown, not enforced by the browser: the API is the judge and says why.
      $(`[data-bounds-for="${name}"]`, form).textContent = `${minimum}–${maximum}`;
    }
  });
}

$("#retention-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  $(".saved", form).textContent = "";
  const name = state.database?.name;
  if (!name) return;
  const retention = {};
  for (const field of RETENTION) {
    const raw = $(`#retention-${field}`).value.trim();
    const value = Number(raw);
    if (raw === "" || !Number.isInteger(value)) {
      showError(form, new ApiError(0, "invalid_input", "A whole number is required.", `retention.${field}`));
      return;
    }
    retention[field] = value;
  }
  await busy($('button[type="submit"]', form), async () => {
    try {
      const saved = await api.changeDatabase(name, { retention });
      state.database = saved;
      renderRetention(saved.retention);
      $(".saved", form).textContent = "Retention updated.";
      await loadBackups(true);
    } catch (error) {
      showError(form, error);
    }
  });
});

// Backups --------------------------------------------------------------------------------

function filters() {
  return { status: $("#filter-status").value, method: $("#filter-method").value };
}

async function loadBackups(reset) {
  const name = state.database?.name;
  if (!name) return;
  const generation = state.generation;
  const seq = ++state.listSeq;
  const page = await api.backups(name, { limit: PAGE_SIZE, cursor: reset ? null : state.nextCursor, ...filters() });
  // A list asked for before a newer one (or before a trigger) would hide what followed.
  if (generation !== state.generation || seq !== state.listSeq) return;
  state.backups = reset ? page.backups : [...state.backups, ...page.backups];
  state.nextCursor = page.next_cursor;
  renderBackups();
  schedulePolling();
  historyFollowsList();
}

async function loadHistory() {
  const name = state.database?.name;
  if (!name) return;
  const generation = state.generation;
  const seq = ++state.historySeq;
  const page = await api.backups(name, { limit: HISTORY_SIZE });
  // Answers can arrive out of order: an older one would draw a state already gone.
  if (generation !== state.generation || seq !== state.historySeq) return;
  state.historyActive = new Set(page.backups.filter((b) => ACTIVE.has(b.status)).map((b) => b.id));
  drawHistory($("#history-chart"), page.backups);
  historyFollowsList();
}

/** Redraws the chart when it shows active a backup the list already shows finished: a
 * backup that ends before the list is answered is never seen finishing by the polling. */
function historyFollowsList() {
  if (state.backups.some((b) => state.historyActive.has(b.id) && !ACTIVE.has(b.status))) {
    state.historyActive = new Set();
    loadHistory().catch(() => {});
  }
}

function renderBackups() {
  $("#backups-table tbody").replaceChildren(...state.backups.flatMap(backupRows));
  $("#backups-empty").hidden = state.backups.length !== 0;
  $("#load-more").hidden = !state.nextCursor;
  renderTrigger();
}

/** "Trigger manual backup" can act only on a database that is shown and has no backup on
 * its way (the API takes one at a time): otherwise it is disabled, and the note says why. */
function renderTrigger() {
  const button = $("#trigger-backup");
  const active = state.backups.find((b) => ACTIVE.has(b.status));
  button.disabled = state.database === null || active !== undefined || button.getAttribute("aria-busy") === "true";
  $("#trigger-note").textContent = active
    ? `Backup ${active.id} is ${active.status}: another one can be triggered once it ends.`
    : "";
}

/** A backup's row, and for a failed one a second row with the reason across the table. */
function backupRows(backup) {
  const rowError = el("p", { class: "error", role: "alert" });
  const actions = el("td", { class: "row-actions" });
  if (backup.status === "done") {
    const download = el("button", { type: "button", class: "small" }, "Download");
    download.addEventListener("click", () => downloadBackup(backup, download, rowError));
    actions.append(download);
  }
  const restore = restoreButton(state.database.name, backup);
  if (restore) actions.append(restore);
  const hold = holdButton(state.database.name, backup, rowError, replaceBackup);
  if (hold) actions.append(hold);
  if (!ACTIVE.has(backup.status)) {
    const remove = el("button", { type: "button", class: "small danger", "data-action": "deleteBackup" }, "Delete");
    remove.addEventListener("click", () => deleteBackup(backup, remove, rowError));
    actions.append(remove);
  }
  actions.append(rowError);
  const reasonId = `reason-${backup.id}`;
  const reason = backup.status === "error" && backup.error ? backup.error : null;
  const status = el("td", { "data-label": "Status", "aria-describedby": reason && reasonId }, statusBadge(backup.status), verificationBadge(backup));
  const row = el(
    "tr",
    { "data-backup-id": backup.id, "data-status": backup.status, class: reason && "has-reason" },
    el("td", { class: "id", "data-label": "ID" }, el("code", {}, backup.id)),
    // To the second: backups taken in the same minute must not look alike.
    el("td", { "data-label": "Created at" }, el("time", { datetime: backup.created_at, title: formatTime(backup.created_at, "UTC", true) }, formatTime(backup.created_at, browserTimeZone(), true))),
    el("td", { "data-label": "Method" }, backup.method),
    el("td", { "data-label": "Runner" }, backup.runner || "–"),
    el("td", { class: "number", "data-label": "Size" }, formatSize(backup.size)),
    status,
    el("td", { class: "kept", "data-label": "Kept as" }, backup.kept_as || "–", protectionNodes(backup)),
    actions,
  );
  if (!reason) return [row];
  const reasonRow = el(
    "tr",
    { class: "reason-row", "data-reason-for": backup.id },
    el("td", { colspan: 8 }, el("p", { class: "reason", id: reasonId }, reason)),
  );
  return [row, reasonRow];
}

/** A backup as the API answered an action on it (a hold, a release), in place. */
function replaceBackup(backup) {
  state.backups = state.backups.map((b) => (b.id === backup.id ? backup : b));
  renderBackups();
}

$("#load-more").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  $("#backups-error").textContent = "";
  await busy(button, async () => {
    try {
      await loadBackups(false);
    } catch (error) {
      $("#backups-error").textContent = error.message;
    }
  });
});

for (const select of [$("#filter-status"), $("#filter-method")]) {
  select.addEventListener("change", async () => {
    $("#backups-error").textContent = "";
    try {
      await loadBackups(true);
    } catch (error) {
      $("#backups-error").textContent = error.message;
    }
  });
}

$("#trigger-backup").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  $("#trigger-error").textContent = "";
  const name = state.database?.name;
  if (!name) return;
  await busy(button, async () => {
    try {
      const backup = await api.createBackup(name);
      const { status, method } = filters();
      if ((status && status !== backup.status) || (method && method !== backup.method)) {
        // The filters would hide the new backup: show them all, so it can be followed.
        $("#filter-status").value = "";
        $("#filter-method").value = "";
      } else {
        state.backups = [backup, ...state.backups.filter((b) => b.id !== backup.id)];
        renderBackups();
      }
      // Then the list as it now is: it supersedes any list asked for before the trigger.
      loadBackups(true).catch((error) => {
        $("#backups-error").textContent = error.message;
      });
      loadHistory().catch(() => {});
    } catch (error) {
      // A 409 names the backup on its way itself.
      $("#trigger-error").textContent = error.message;
    }
  });
  renderTrigger();
});

async function downloadBackup(backup, button, rowError) {
  rowError.textContent = "";
  await busy(button, async () => {
    try {
      const link = await api.archive(state.database.name, backup.id);
      // A presigned S3 GET answered with Content-Disposition: attachment, so the
      // page stays and the browser saves <name>.pgsql.
      window.location.assign(link.download_url);
    } catch (error) {
      rowError.textContent = error.message;
    }
  });
}

async function deleteBackup(backup, button, rowError) {
  rowError.textContent = "";
  const confirmed = await confirmAction({
    title: `Delete backup ${backup.id}?`,
    message: `Its archive ${backup.name}.pgsql is deleted with it.`,
    action: "Delete backup",
  });
  if (!confirmed) return;
  await busy(button, async () => {
    try {
      await api.deleteBackup(state.database.name, backup.id);
      state.backups = state.backups.filter((b) => b.id !== backup.id);
      renderBackups();
      loadHistory().catch(() => {});
    } catch (error) {
      rowError.textContent = error.message;
    }
  });
}

// Live status: poll the rows that are scheduled or running, stop when none is.

function schedulePolling() {
  stopPolling();
  if (state.backups.some((b) => ACTIVE.has(b.status))) {
    const generation = state.generation;
    state.pollTimer = setTimeout(() => poll(generation), POLL_MS);
  }
}

function stopPolling() {
  if (state.pollTimer !== null) clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

async function poll(generation) {
  state.pollTimer = null;
  const name = state.database?.name;
  if (!name || generation !== state.generation) return;
  const active = state.backups.filter((b) => ACTIVE.has(b.status));
  const answers = await Promise.allSettled(active.map((b) => api.backup(name, b.id)));
  if (generation !== state.generation) return;
  const fresh = new Map();
  const gone = new Set();
  let failure = null;
  answers.forEach((answer, i) => {
    if (answer.status === "fulfilled") fresh.set(answer.value.id, answer.value);
    else if (answer.reason instanceof ApiError && answer.reason.status === 404) gone.add(active[i].id);
    else failure = answer.reason;
  });
  state.backups = state.backups.filter((b) => !gone.has(b.id)).map((b) => fresh.get(b.id) || b);
  renderBackups();
  $("#backups-error").textContent = failure ? failure.message : "";
  if ([...fresh.values()].some((b) => !ACTIVE.has(b.status)) || gone.size) {
    loadHistory().catch(() => {});
  }
  // A failure other than "gone" (the network, the API) is retried at the next tick,
  // unless the token was refused, which signs out and stops everything.
  schedulePolling();
}

// Continuous backups ---------------------------------------------------------------------
// GET /v1/databases/{db}/pitr, polled while the tab is open. A refresh changes only the
// values that moved, in place: the block never empties between two answers. The words are
// the CLI's (pgbackups_cli/pitr_settings.py): `13 s behind`, `ongoing`, `history kept until`.
// An older API without ranges or breaks is shown with what it sends.

function clearPitr() {
  state.pitrShown = null;
  state.pitr = null;
  $("#pitr-status").replaceChildren();
  $("#pitr-disabled").hidden = true;
  $("#pitr-kept").hidden = true;
  $("#pitr-kept-until").replaceChildren();
  $("#pitr-details").hidden = true;
  $("#pitr-error").textContent = "";
  $("#pitr-broken").hidden = true;
  $("#pitr-reason").textContent = "";
  $("#pitr-base-error").hidden = true;
  $("#pitr-base-error-text").textContent = "";
  for (const slot of ["#pitr-earliest", "#pitr-latest", "#pitr-lag", "#pitr-archived", "#pitr-base-run", "#pitr-since", "#pitr-ranges", "#pitr-timeline", "#pitr-breaks-table tbody"]) {
    $(slot).replaceChildren();
    delete $(slot).dataset.shown;
  }
  $("#pitr-ranges-block").hidden = true;
  showPointInTime([]);
  $("#pitr-breaks-block").hidden = true;
  const form = $("#pitr-form");
  clearErrors(form);
  form.reset();
  delete form.dataset.filled;
  delete form.dataset.edited;
  $(".saved", form).textContent = "";
  $("#pitr-disable").hidden = true;
  $("#base-backups-table tbody").replaceChildren();
  $("#base-backups-table").hidden = true;
  $("#base-backups-empty").hidden = true;
}

async function loadPitr() {
  const name = state.database?.name;
  if (!name) return;
  const generation = state.generation;
  try {
    const pitr = await api.pitr(name);
    if (generation !== state.generation) return;
    renderPitr(pitr);
    $("#pitr-error").textContent = "";
  } catch (error) {
    if (generation !== state.generation) return;
    // The rest of the tab does not need this block: the failure is said here only, what
    // was shown stays, and the next tick tries again (a refused token signs out).
    $("#pitr-error").textContent = `Continuous backups cannot be shown: ${error.message}`;
  }
  schedulePitrPolling(generation);
}

function schedulePitrPolling(generation) {
  stopPitrPolling();
  if (generation !== state.generation || !storedToken()) return;
  state.pitrTimer = setTimeout(() => {
    state.pitrTimer = null;
    // A tab in the background asks nothing; it catches up on its next tick once shown.
    if (document.hidden) schedulePitrPolling(generation);
    else loadPitr();
  }, PITR_POLL_MS);
}

function stopPitrPolling() {
  if (state.pitrTimer !== null) clearTimeout(state.pitrTimer);
  state.pitrTimer = null;
}

/** `slot` shows `text` (or the nodes `make()` builds) unless it already shows `key`. */
function showOnce(slot, key, make) {
  if (slot.dataset.shown === key) return;
  slot.dataset.shown = key;
  slot.replaceChildren(...[make()].flat());
}

/** A moment in the browser's zone to the second, UTC on hover (a restore takes any second). */
function momentNode(value) {
  if (!value) return "–";
  return el("time", { datetime: value, title: formatTime(value, "UTC", true) }, formatTime(value, browserTimeZone(), true));
}

/** `13 s`, `4 min 7 s`, `2 h 5 min`, `3 d 4 h`: whole units, the two largest (as the CLI). */
function durationWords(seconds) {
  const total = Math.max(Math.round(seconds), 0);
  const [days, hours, minutes, secs] = [Math.floor(total / 86400), Math.floor(total / 3600) % 24, Math.floor(total / 60) % 60, total % 60];
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${secs} s`;
  return `${secs} s`;
}

function lagWords(seconds) {
  return seconds === null || seconds === undefined ? "–" : `${durationWords(seconds)} behind`;
}

function gapWords(brk) {
  return brk.recovered_at === null || brk.recovered_at === undefined || brk.gap_seconds === null || brk.gap_seconds === undefined
    ? "ongoing"
    : durationWords(brk.gap_seconds);
}

/** The API's ranges, oldest first; from an older API, its one earliest-to-latest window. */
function recoverableRanges(pitr) {
  if (Array.isArray(pitr.recoverable_ranges)) return pitr.recoverable_ranges;
  if (pitr.earliest_recoverable_at && pitr.latest_recoverable_at) {
    return [{ from: pitr.earliest_recoverable_at, to: pitr.latest_recoverable_at, base_backup_id: null }];
  }
  return [];
}

function renderPitr(pitr) {
  state.pitr = pitr;
  const ranges = recoverableRanges(pitr);
  const kept = !pitr.enabled && pitr.history_kept_until && ranges.length > 0 ? pitr.history_kept_until : "";
  $("#pitr-disabled").hidden = pitr.enabled || kept !== "";
  $("#pitr-kept").hidden = kept === "";
  showOnce($("#pitr-kept-until"), kept, () => momentNode(kept));
  $("#pitr-details").hidden = !pitr.enabled;
  const status = pitr.enabled ? pitr.status : "";
  showOnce($("#pitr-status"), status, () => (status ? statusBadge(status) : []));
  renderPitrForm(pitr);
  renderRanges(pitr.enabled || kept ? ranges : []);
  const broken = pitr.enabled && pitr.status === "broken";
  $("#pitr-broken").hidden = !broken;
  if (!pitr.enabled) return;
  const reason = broken ? pitr.broken_reason || "" : "";
  if ($("#pitr-reason").textContent !== reason) $("#pitr-reason").textContent = reason;
  const since = broken ? pitr.broken_since || "" : "";
  showOnce($("#pitr-since"), since, () => momentNode(since));
  for (const [slot, value] of [
    ["#pitr-earliest", pitr.earliest_recoverable_at],
    ["#pitr-latest", pitr.latest_recoverable_at],
  ]) {
    showOnce($(slot), value || "", () => momentNode(value));
  }
  const wal = pitr.last_archived_wal || "";
  const archivedAt = pitr.last_archived_at || "";
  showOnce($("#pitr-archived"), `${wal} ${archivedAt}`, () =>
    wal && archivedAt ? [wal, " at ", momentNode(archivedAt)] : wal || momentNode(archivedAt),
  );
  const lag = lagWords(pitr.lag_seconds);
  showOnce($("#pitr-lag"), lag, () => lag);
  renderBreaks(Array.isArray(pitr.breaks) ? pitr.breaks : []);
  // The base backup on its way and the last failure, when the API says them.
  const run = pitr.base_backup_in_progress || null;
  showOnce($("#pitr-base-run"), run ? JSON.stringify(run) : "", () => (run ? baseBackupRunText(run) : []));
  const failure = pitr.last_base_backup_error || "";
  if ($("#pitr-base-error-text").textContent !== failure) $("#pitr-base-error-text").textContent = failure;
  $("#pitr-base-error").hidden = failure === "";
  renderBaseBackups(pitr.base_backups);
}

/** The form follows the API's settings until someone edits it. */
function renderPitrForm(pitr) {
  const form = $("#pitr-form");
  const action = pitr.enabled ? "Save changes" : "Enable continuous backups";
  if ($("#pitr-save").textContent !== action) $("#pitr-save").textContent = action;
  $("#pitr-disable").hidden = !pitr.enabled;
  const settings = `${pitr.enabled} ${pitr.base_backup_every_days} ${pitr.window_days}`;
  if (form.dataset.edited || form.dataset.filled === settings) return;
  form.dataset.filled = settings;
  $("#pitr-every-days").value = String(pitr.base_backup_every_days ?? 1);
  $("#pitr-window-days").value = String(pitr.window_days ?? 7);
}

const TIMELINE = { width: 640, height: 28 };
const SVG_NS = "http://www.w3.org/2000/svg";

function renderRanges(ranges) {
  showPointInTime(ranges);
  const key = JSON.stringify(ranges);
  const list = $("#pitr-ranges");
  if (list.dataset.shown === key) return;
  list.dataset.shown = key;
  $("#pitr-ranges-block").hidden = ranges.length === 0;
  list.replaceChildren(
    ...ranges.map((range) =>
      el("li", { "data-base-backup-id": range.base_backup_id || undefined }, "from ", momentNode(range.from), " to ", momentNode(range.to)),
    ),
  );
  // A time line from the first range's start to the last one's end: each range a bar,
  // each gap blank. Attributes only: the page's policy allows no inline style.
  const timeline = $("#pitr-timeline");
  const start = ranges.length ? new Date(ranges[0].from).getTime() : 0;
  const span = ranges.length ? Math.max(new Date(ranges[ranges.length - 1].to).getTime() - start, 1) : 1;
  timeline.replaceChildren(
    ...ranges.map((range) => {
      const from = ((new Date(range.from).getTime() - start) / span) * TIMELINE.width;
      const to = ((new Date(range.to).getTime() - start) / span) * TIMELINE.width;
      const bar = document.createElementNS(SVG_NS, "rect");
      for (const [name, value] of Object.entries({ class: "range", x: from, y: 4, width: Math.max(to - from, 2), height: TIMELINE.height - 8 })) {
        bar.setAttribute(name, String(value));
      }
      const title = document.createElementNS(SVG_NS, "title");
      title.textContent = `from ${formatTime(range.from, "UTC", true)} to ${formatTime(range.to, "UTC", true)}`;
      bar.append(title);
      return bar;
    }),
  );
}

function renderBreaks(breaks) {
  const body = $("#pitr-breaks-table tbody");
  showOnce(body, JSON.stringify(breaks), () =>
    breaks.map((brk) =>
      el(
        "tr",
        {},
        el("td", { "data-label": "At" }, momentNode(brk.at)),
        el("td", { "data-label": "Reason" }, brk.reason || "–"),
        el("td", { "data-label": "Gap" }, gapWords(brk)),
        el("td", { "data-label": "Recoverable again at" }, momentNode(brk.recovered_at)),
      ),
    ),
  );
  $("#pitr-breaks-block").hidden = breaks.length === 0;
}

function baseBackupRunText(run) {
  if (run.status === "running") {
    return ["A base backup is running", run.runner ? ` on ${run.runner}` : "", " since ", momentNode(run.started_at), "."];
  }
  return ["A base backup is scheduled (asked at ", momentNode(run.requested_at), ")."];
}

function renderBaseBackups(bases) {
  const key = JSON.stringify(bases);
  if (state.pitrShown === key) return;
  state.pitrShown = key;
  // A field the API may add later is shown once it is there.
  const withRunner = bases.some((base) => "runner" in base);
  $('#base-backups-table th[data-column="runner"]').hidden = !withRunner;
  const rows = [...bases].reverse().map((base) =>
    el(
      "tr",
      { "data-base-backup-id": base.id },
      el("td", { "data-label": "Started at" }, momentNode(base.started_at)),
      el("td", { "data-label": "Finished at" }, momentNode(base.finished_at)),
      el("td", { class: "number", "data-label": "Size" }, formatSize(base.size)),
      withRunner && el("td", { "data-label": "Runner" }, base.runner || "–"),
    ),
  );
  $("#base-backups-table tbody").replaceChildren(...rows);
  $("#base-backups-table").hidden = bases.length === 0;
  $("#base-backups-empty").hidden = bases.length !== 0;
}

/** Enable or change: the API checks the server; its refusal is shown as its words. */
$("#pitr-form").addEventListener("input", (event) => {
  event.currentTarget.dataset.edited = "true";
});

$("#pitr-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const name = state.database?.name;
  if (!name) return;
  clearErrors(form);
  $(".saved", form).textContent = "";
  const wasEnabled = Boolean(state.pitr?.enabled);
  const settings = {
    enabled: true,
    base_backup_every_days: Number($("#pitr-every-days").value),
    window_days: Number($("#pitr-window-days").value),
  };
  const url = $("#pitr-replication-url").value.trim();
  if (url) settings.replication_url = url;
  const generation = state.generation;
  await busy($("#pitr-save"), async () => {
    try {
      const answer = await api.putPitr(name, settings);
      if (generation !== state.generation) return;
      $("#pitr-replication-url").value = "";
      delete form.dataset.edited;
      $(".saved", form).textContent = wasEnabled
        ? `Continuous backups of ${name} changed.`
        : `Continuous backups enabled for ${name}. The first base backup is on its way.`;
      renderPitr(answer);
    } catch (error) {
      if (generation === state.generation) showError(form, error);
    }
  });
});

$("#pitr-disable").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const name = state.database?.name;
  const current = state.pitr;
  if (!name || !current) return;
  const days = current.window_days === 1 ? "1 day" : `${current.window_days} days`;
  const confirmed = await confirmAction({
    title: `Disable continuous backups of ${name}?`,
    message:
      "No more WAL is captured and its replication slot is dropped; the history kept stays " +
      `restorable until it expires with the window (${days}).`,
    action: "Disable continuous backups",
  });
  if (!confirmed) return;
  const form = $("#pitr-form");
  clearErrors(form);
  const generation = state.generation;
  await busy(button, async () => {
    try {
      const answer = await api.putPitr(name, {
        enabled: false,
        base_backup_every_days: current.base_backup_every_days,
        window_days: current.window_days,
      });
      if (generation !== state.generation) return;
      delete form.dataset.edited;
      $(".saved", form).textContent = `Continuous backups disabled for ${name}.`;
      renderPitr(answer);
    } catch (error) {
      if (generation === state.generation) showError(form, error);
    }
  });
});

// -- start -----------------------------------------------------------------------------

fillScheduleControls();
window.addEventListener("hashchange", route);
route();

// Restore drills (POST/GET /v1/databases/{db}/verifications): the Verified badge on a
// backup's row and the Verification block of a database: its last drill (status, measured
// RTO, checks, a link to the JSON report in S3), its next one, and "Verify now", followed
// live. The block reads the database's `verification_status`; it asks for a drill only
// when the database names one, so an API without drills gets no request.

import { ApiError, api } from "./api.js";
import { $, browserTimeZone, busy, clearErrors, el, formatDuration, formatTime, hourLabel, showError } from "./dom.js";

const POLL_MS = 2000;
const ACTIVE = new Set(["scheduled", "running"]);

const block = {
  database: null, // the database record the block shows
  timer: null,
  shown: 0, // bumped on every open and close: a late answer of a left database is dropped
  finished: () => {}, // called when a followed drill ends (the backups' badges change)
};

/** The Verified badge of a backup's row: passed or failed, when it was verified. */
export function verificationBadge(backup) {
  if (backup.verification !== "passed" && backup.verification !== "failed") return null;
  const passed = backup.verification === "passed";
  const when = backup.verified_at ? ` at ${formatTime(backup.verified_at, browserTimeZone(), true)}` : "";
  return el(
    "span",
    {
      class: `badge ${passed ? "badge-verified" : "badge-unverified"}`,
      title: `${passed ? "A restore drill passed" : "A restore drill failed"}${when}`,
    },
    passed ? "Verified" : "Verification failed",
  );
}

/** The block of `database` (its record as GET /v1/databases/{db} answers it). */
export function openVerification(database, finished) {
  closeVerification();
  block.database = database;
  block.finished = finished;
  render(database);
}

/** The view is left: nothing of it stays, nothing is followed. */
export function closeVerification() {
  block.shown += 1;
  stopPolling();
  block.database = null;
  block.finished = () => {};
  for (const slot of ["#verification-last", "#verification-next", "#verification-rto", "#verification-report"]) {
    $(slot).replaceChildren();
  }
  $("#verification-note").textContent = "";
  $("#verification-error").textContent = "";
  $("#verification-checks tbody").replaceChildren();
  $("#verification-checks-block").hidden = true;
  $("#verify-now").disabled = false;
  const form = $("#verification-form");
  clearErrors(form);
  form.reset();
  $(".saved", form).textContent = "";
  $("#verification-smoke").textContent = "";
}

function moment(value) {
  if (!value) return "–";
  return el("time", { datetime: value, title: formatTime(value, "UTC", true) }, formatTime(value, browserTimeZone(), true));
}

function statusBadge(status) {
  return el("span", { class: `status status-${status === "passed" ? "done" : status === "failed" ? "error" : status}` }, status);
}

function render(database) {
  const status = database.verification_status || {};
  const settings = database.verification || null;
  $("#verification-last").replaceChildren(
    ...(status.last_id ? [statusBadge(status.last_status), " ", moment(status.last_at)] : ["No drill yet"]),
  );
  const every = settings?.every_days ? ` (every ${settings.every_days} days)` : "";
  $("#verification-next").replaceChildren(
    ...(settings && settings.enabled === false
      ? ["Scheduled drills are disabled"]
      : status.next_at
        ? [moment(status.next_at), every]
        : ["–"]),
  );
  $("#verification-rto").textContent = formatDuration(status.restore_seconds);
  $("#verification-report").replaceChildren("–");
  $("#verification-checks-block").hidden = true;
  if (status.last_id) showDrill(status.last_id, block.shown);
  renderSettings(settings);
}

// The drills' schedule (PATCH /v1/databases/{db} {verification}); the smoke queries are
// set with the API or the CLI, and only counted here.

$("#verification-hour").replaceChildren(
  el("option", { value: "" }, "Automatic (12 h from the backups)"),
  ...Array.from({ length: 24 }, (_, hour) => el("option", { value: hour }, hourLabel(hour))),
);

function renderSettings(settings) {
  const form = $("#verification-form");
  // An API without drills has no settings to show or change.
  form.hidden = settings === null;
  if (settings === null) return;
  $("#verification-enabled").checked = Boolean(settings.enabled);
  $("#verification-every-days").value = String(settings.every_days ?? 7);
  $("#verification-hour").value = settings.hour === null || settings.hour === undefined ? "" : String(settings.hour);
  const smoke = (settings.smoke_queries || []).length;
  $("#verification-smoke").textContent =
    smoke === 0
      ? "No smoke query yet: they are set with the API or the CLI."
      : `${smoke} smoke ${smoke === 1 ? "query" : "queries"}, changed with the API or the CLI.`;
}

$("#verification-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const database = block.database?.name;
  if (!database) return;
  clearErrors(form);
  $(".saved", form).textContent = "";
  const raw = $("#verification-every-days").value.trim();
  const everyDays = Number(raw);
  if (raw === "" || !Number.isInteger(everyDays)) {
    showError(form, new ApiError(0, "invalid_input", "A whole number of days is required.", "verification.every_days"));
    return;
  }
  const hour = $("#verification-hour").value;
  const verification = {
    enabled: $("#verification-enabled").checked,
    every_days: everyDays,
    hour: hour === "" ? null : Number(hour),
  };
  const shown = block.shown;
  await busy($('button[type="submit"]', form), async () => {
    try {
      const saved = await api.changeDatabase(database, { verification });
      if (shown !== block.shown) return;
      block.database = saved;
      stopPolling();
      render(saved);
      $(".saved", form).textContent = "Drill settings saved.";
    } catch (error) {
      if (shown === block.shown) showError(form, error);
    }
  });
});

/** The last drill's checks and report; followed while it is on its way. */
async function showDrill(id, shown) {
  let drill;
  try {
    drill = await api.verification(block.database.name, id);
  } catch (error) {
    if (shown === block.shown) $("#verification-error").textContent = `The last drill cannot be shown: ${error.message}`;
    return;
  }
  if (shown !== block.shown) return;
  $("#verification-error").textContent = "";
  renderDrill(drill);
  if (ACTIVE.has(drill.status)) {
    block.timer = setTimeout(() => follow(id, shown), POLL_MS);
  }
}

function renderDrill(drill) {
  const what =
    drill.kind === "point_in_time"
      ? [" · point in time ", moment(drill.target_time)]
      : drill.backup_id
        ? [" · backup ", el("code", {}, drill.backup_id)]
        : [];
  $("#verification-last").replaceChildren(statusBadge(drill.status), " ", moment(drill.finished_at || drill.started_at || drill.created_at), ...what);
  if (drill.restore_seconds !== null && drill.restore_seconds !== undefined) {
    $("#verification-rto").textContent = formatDuration(drill.restore_seconds);
  }
  $("#verification-note").textContent = ACTIVE.has(drill.status)
    ? `Drill ${drill.id} is ${drill.status}: followed here until it ends.`
    : drill.error
      ? `Drill ${drill.id} could not check the backup: ${drill.error}`
      : "";
  $("#verification-report").replaceChildren(drill.report_key ? reportLink(drill) : "–");
  const checks = drill.checks || [];
  $("#verification-checks tbody").replaceChildren(
    ...checks.map((check) =>
      el(
        "tr",
        { "data-check": check.name, "data-passed": String(Boolean(check.passed)) },
        el("td", { "data-label": "Check" }, check.name),
        el("td", { "data-label": "Result" }, el("span", { class: `status status-${check.passed ? "done" : "error"}` }, check.passed ? "passed" : "failed")),
        el("td", { "data-label": "Detail" }, check.detail || ""),
      ),
    ),
  );
  $("#verification-checks-block").hidden = checks.length === 0;
}

/** The report is in S3: a presigned GET asked for when the link is followed (it expires).
 * S3 answers it as a file to save, so the page stays, as Download does for an archive. */
function reportLink(drill) {
  const link = el("a", { href: "#", id: "verification-report-link" }, "Download the report (JSON)");
  const database = block.database.name;
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    $("#verification-error").textContent = "";
    try {
      const { url } = await api.verificationReport(database, drill.id);
      window.location.assign(url);
    } catch (error) {
      $("#verification-error").textContent = error.message;
    }
  });
  return link;
}

async function follow(id, shown) {
  block.timer = null;
  if (shown !== block.shown) return;
  let drill;
  try {
    drill = await api.verification(block.database.name, id);
  } catch (error) {
    // Said and asked again (a refused token signs out, which closes the block).
    if (shown !== block.shown) return;
    $("#verification-error").textContent = error.message;
    block.timer = setTimeout(() => follow(id, shown), POLL_MS);
    return;
  }
  if (shown !== block.shown) return;
  $("#verification-error").textContent = "";
  renderDrill(drill);
  if (ACTIVE.has(drill.status)) {
    block.timer = setTimeout(() => follow(id, shown), POLL_MS);
    return;
  }
  // Ended: the database's status (next drill, RTO) and the backups' badges move with it.
  try {
    const database = await api.database(block.database.name);
    if (shown !== block.shown) return;
    block.database = database;
    render(database);
  } catch (error) {
    if (shown === block.shown) $("#verification-error").textContent = error.message;
  }
  block.finished();
}

function stopPolling() {
  if (block.timer !== null) clearTimeout(block.timer);
  block.timer = null;
}

$("#verify-now").addEventListener("click", async (event) => {
  const database = block.database?.name;
  if (!database) return;
  const shown = block.shown;
  $("#verification-error").textContent = "";
  await busy(event.currentTarget, async () => {
    try {
      const drill = await api.createVerification(database, {});
      if (shown !== block.shown) return;
      stopPolling();
      renderDrill(drill);
      block.timer = setTimeout(() => follow(drill.id, shown), POLL_MS);
    } catch (error) {
      if (shown !== block.shown) return;
      // A 409 names the drill on its way; a 422 says why the stack cannot run one.
      $("#verification-error").textContent = error instanceof ApiError ? error.message : String(error);
    }
  });
});

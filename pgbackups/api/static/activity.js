// The Activity page (#/activity, admins): the audit trail, newest first, a page at a time.

import { request } from "./api.js";
import { $, busy, el, formatTime } from "./dom.js";

const PAGE_SIZE = 50;

let shown = 0; // bumped on every open and sign-out: a late answer of a left page is dropped
let nextCursor = null;

function entryRow(entry) {
  return el(
    "tr",
    { "data-seq": entry.seq },
    el("td", { "data-label": "When" }, el("time", { datetime: entry.at }, formatTime(entry.at, "UTC", true))),
    el("td", { "data-label": "Token" }, entry.token),
    el("td", { "data-label": "Role" }, entry.role || "–"),
    el("td", { "data-label": "Source IP" }, entry.source_ip),
    el("td", { "data-label": "Route" }, entry.route),
    el("td", { "data-label": "Target" }, el("code", {}, entry.target)),
    el("td", { class: "number", "data-label": "Status" }, entry.status),
  );
}

async function loadPage(reset) {
  const generation = shown;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (!reset && nextCursor) params.set("cursor", nextCursor);
  const page = await request("GET", `/v1/audit?${params}`);
  if (generation !== shown) return;
  const rows = page.entries.map(entryRow);
  const body = $("#activity-table tbody");
  if (reset) body.replaceChildren(...rows);
  else body.append(...rows);
  nextCursor = page.next_cursor;
  $("#activity-table").hidden = body.children.length === 0;
  $("#activity-empty").hidden = body.children.length !== 0;
  $("#activity-more").hidden = !nextCursor;
}

export async function openActivity() {
  shown += 1;
  const generation = shown;
  clearRows();
  try {
    await loadPage(true);
  } catch (error) {
    if (generation === shown) $("#activity-error").textContent = error.message;
  }
}

function clearRows() {
  nextCursor = null;
  $("#activity-table tbody").replaceChildren();
  $("#activity-table").hidden = true;
  $("#activity-empty").hidden = true;
  $("#activity-more").hidden = true;
  $("#activity-error").textContent = "";
}

/** Signed out: nothing of the previous session's trail stays in the page. */
export function clearActivity() {
  shown += 1;
  clearRows();
}

$("#activity-more").addEventListener("click", async (event) => {
  $("#activity-error").textContent = "";
  await busy(event.currentTarget, async () => {
    try {
      await loadPage(false);
    } catch (error) {
      $("#activity-error").textContent = error.message;
    }
  });
});

// A backup's protection on its row: the legal hold (Hold / Release) and the Object Lock
// date S3 keeps its archive until. Holding needs operate, releasing admin (access.js).

import { api } from "./api.js";
import { browserTimeZone, busy, el, formatTime } from "./dom.js";

/** What keeps the backup besides retention: a Held badge, the date its lock ends. */
export function protectionNodes(backup) {
  const nodes = [];
  if (backup.legal_hold) {
    nodes.push(el("span", { class: "badge badge-held", title: "Kept until released, whatever retention says" }, "Held"));
  }
  if (backup.locked_until) {
    nodes.push(
      el(
        "span",
        { class: "locked-until" },
        "Locked until ",
        el("time", { datetime: backup.locked_until, title: formatTime(backup.locked_until, "UTC", true) }, formatTime(backup.locked_until, browserTimeZone())),
      ),
    );
  }
  return nodes;
}

/** Hold on a done backup that is not held, Release on a held one; `changed` gets the
 * backup as the API answers it, a refusal is said in `rowError`. */
export function holdButton(database, backup, rowError, changed) {
  if (backup.legal_hold) {
    const release = el("button", { type: "button", class: "small secondary", "data-action": "releaseBackup" }, "Release");
    release.addEventListener("click", () => act(release, rowError, changed, () => api.releaseBackup(database, backup.id)));
    return release;
  }
  if (backup.status !== "done") return null;
  const hold = el("button", { type: "button", class: "small secondary", "data-action": "holdBackup", title: "Keep it until released" }, "Hold");
  hold.addEventListener("click", () => act(hold, rowError, changed, () => api.holdBackup(database, backup.id)));
  return hold;
}

async function act(button, rowError, changed, call) {
  rowError.textContent = "";
  await busy(button, async () => {
    try {
      changed(await call());
    } catch (error) {
      rowError.textContent = error.message;
    }
  });
}

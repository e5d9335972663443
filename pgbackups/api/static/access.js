// What the signed-in token may do, and the one place the page decides what it offers.
// The page shows only the controls the token's role allows; the API checks every request's
// role all the same (pgbackups.domain.access.ROUTES), so this is for people, not security.

import { request } from "./api.js";

const RANKS = { read: 0, operate: 1, admin: 2 };

// Each action of the page, and the role its route needs (mirrors the API's route table).
const NEEDS = {
  addDatabase: "admin", // POST /v1/databases
  removeDatabase: "admin", // DELETE /v1/databases/{db}
  triggerBackup: "operate", // POST /v1/databases/{db}/backups
  deleteBackup: "admin", // DELETE /v1/databases/{db}/backups/{id}
  holdBackup: "operate", // PUT /v1/databases/{db}/backups/{id}/hold
  releaseBackup: "admin", // DELETE /v1/databases/{db}/backups/{id}/hold
  // POST /v1/databases/{db}/restores; into the database itself (`confirm`) needs admin.
  restore: "operate",
  restoreInPlace: "admin",
  verify: "operate", // POST /v1/databases/{db}/verifications
  changeVerification: "operate", // PATCH /v1/databases/{db} {verification}
  changeSchedule: "operate", // PUT /v1/databases/{db}/schedule
  // PATCH /v1/databases/{db}: operate; keeping fewer than the defaults needs admin, which
  // the API answers with a 403 that names it.
  changeRetention: "operate",
  manageTokens: "admin", // GET/POST /v1/tokens, DELETE /v1/tokens/{name}
  readActivity: "admin", // GET /v1/audit
};

let signedIn = null; // {name, role, expires_at} of GET /v1/token; null until it answers
let asking = null;
let session = 0; // bumped on sign-out: a late answer about the previous token is dropped

/** Whether the signed-in token may do `action`; nothing beyond `read` until its role is known. */
export function may(action) {
  const role = signedIn ? signedIn.role : "read";
  return (RANKS[role] ?? -1) >= RANKS[NEEDS[action]];
}

/** Hides every `[data-action]` element under `root` the token may not use.
 * A form with such an action keeps its values in view, read-only. */
export function applyAccess(root = document) {
  const marked = root.querySelectorAll ? [...root.querySelectorAll("[data-action]")] : [];
  if (root.dataset && root.dataset.action) marked.push(root);
  for (const element of marked) {
    const allowed = may(element.dataset.action);
    if (element.tagName === "FORM") {
      for (const control of element.elements) {
        if (control.type === "submit") control.hidden = !allowed;
        else control.disabled = !allowed;
      }
    } else {
      element.hidden = !allowed;
    }
  }
}

// Rows the page draws later (backups, databases) get the same treatment as they appear.
new MutationObserver((changes) => {
  for (const change of changes) {
    for (const node of change.addedNodes) {
      if (node.nodeType === Node.ELEMENT_NODE) applyAccess(node);
    }
  }
}).observe(document.documentElement, { childList: true, subtree: true });

function showSignedIn() {
  const slot = document.querySelector("#signed-in-as");
  if (slot) slot.textContent = signedIn ? `${signedIn.name} (${signedIn.role})` : "";
  applyAccess(document);
}

/** Asks the API who the stored token is (once per sign-in), then shows what it may do. */
export function loadAccess() {
  if (signedIn || asking) return asking ?? Promise.resolve(signedIn);
  const asked = session;
  asking = request("GET", "/v1/token")
    .catch(() => null) // offered as read only; the API refuses what it must
    .then((token) => {
      if (asked !== session) return null;
      signedIn = token;
      asking = null;
      showSignedIn();
      return token;
    });
  return asking;
}

/** Signed out: the next token starts with nothing beyond `read` until its role is known. */
export function forgetAccess() {
  session += 1;
  signedIn = null;
  asking = null;
  showSignedIn();
}

// Until the token's role is known, the page offers what `read` may do.
applyAccess(document);

// The Tokens page (#/tokens, admins): list, create (the secret shown once), revoke.

import { request } from "./api.js";
import { $, browserTimeZone, busy, clearErrors, el, formatTime, showError } from "./dom.js";

let shown = 0; // bumped on every open and sign-out: a late answer of a left page is dropped
let confirmAction = async () => false;

function moment(value) {
  return el("time", { datetime: value, title: formatTime(value, "UTC", true) }, formatTime(value, browserTimeZone()));
}

function tokenRow(token) {
  const revoke = el("button", { type: "button", class: "small danger", "data-action": "manageTokens" }, "Revoke");
  revoke.addEventListener("click", () => revokeToken(token.name, revoke));
  return el(
    "tr",
    { "data-token": token.name },
    el("td", { "data-label": "Name" }, token.name),
    el("td", { "data-label": "Role" }, token.role),
    el("td", { "data-label": "Created" }, moment(token.created_at)),
    el("td", { "data-label": "Expires" }, token.expires_at ? moment(token.expires_at) : "Never", token.expired ? " (expired)" : ""),
    el("td", { "data-label": "Last used" }, token.last_used_at ? moment(token.last_used_at) : "Never"),
    el("td", { class: "row-actions" }, revoke),
  );
}

async function loadTokens() {
  const generation = shown;
  $("#tokens-error").textContent = "";
  try {
    const { tokens } = await request("GET", "/v1/tokens");
    if (generation !== shown) return;
    $("#tokens-table tbody").replaceChildren(...tokens.map(tokenRow));
    $("#tokens-table").hidden = tokens.length === 0;
    $("#tokens-empty").hidden = tokens.length !== 0;
  } catch (error) {
    if (generation === shown) $("#tokens-error").textContent = error.message;
  }
}

/** Opens the page; `confirm` is the page's confirmation dialog. */
export function openTokens(confirm) {
  confirmAction = confirm;
  shown += 1;
  hideSecret();
  loadTokens();
}

/** Signed out: nothing of the previous session's tokens stays in the page. */
export function clearTokens() {
  shown += 1;
  $("#tokens-table tbody").replaceChildren();
  $("#tokens-table").hidden = true;
  $("#tokens-empty").hidden = true;
  $("#tokens-error").textContent = "";
  hideSecret();
  const form = $("#create-token-form");
  form.reset();
  clearErrors(form);
}

function hideSecret() {
  $("#new-token-secret").value = "";
  $("#new-token").hidden = true;
}

$("#create-token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  hideSecret();
  const wanted = { name: $("#token-name").value.trim(), role: $("#token-role").value };
  const days = $("#token-days").value.trim();
  if (days !== "") {
    const value = Number(days);
    if (!Number.isInteger(value)) {
      showError(form, { field: "expires_in_days", message: "A whole number of days, or nothing for no expiry." });
      return;
    }
    wanted.expires_in_days = value;
  }
  await busy($('button[type="submit"]', form), async () => {
    try {
      const created = await request("POST", "/v1/tokens", wanted);
      form.reset();
      $("#new-token-name").textContent = created.name;
      $("#new-token-secret").value = created.token;
      $("#new-token").hidden = false;
      $("#new-token-secret").select();
      await loadTokens();
    } catch (error) {
      showError(form, error);
    }
  });
});

$("#new-token-done").addEventListener("click", hideSecret);
// Shown once: leaving the page forgets it.
window.addEventListener("hashchange", () => {
  if (location.hash !== "#/tokens") hideSecret();
});

async function revokeToken(name, button) {
  const confirmed = await confirmAction({
    title: `Revoke ${name}?`,
    message: "Whoever uses it is refused within a minute. This cannot be undone.",
    action: "Revoke token",
  });
  if (!confirmed) return;
  await busy(button, async () => {
    try {
      await request("DELETE", `/v1/tokens/${encodeURIComponent(name)}`);
      await loadTokens();
    } catch (error) {
      $("#tokens-error").textContent = error.message;
    }
  });
}

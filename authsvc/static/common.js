// Shared by every page: no patient data from the browser's back/forward cache,
// the language switch keeps the URL fragment (the QR's ID and password), and
// a small helper for the JSON routes.
"use strict";

// A page restored from the back/forward cache after logout must not show
// anything: ask the server again (it answers with the login page).
window.addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });

document.addEventListener("DOMContentLoaded", () => {
  for (const a of document.querySelectorAll("a.lang-link")) {
    a.addEventListener("click", () => { if (location.hash) a.href = a.href.split("#")[0] + location.hash; });
  }
});

// The translated messages of a page, keyed by error code (rendered by the server).
function pageMessages() {
  const el = document.getElementById("messages");
  return el ? JSON.parse(el.textContent) : {};
}

// POST JSON; resolves to {ok, status, data}. Network failures give status 0.
async function postJson(url, body) {
  try {
    const r = await fetch(url, {method: "POST", credentials: "same-origin",
                                headers: {"Content-Type": "application/json"},
                                body: JSON.stringify(body || {})});
    let data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    return {ok: r.ok, status: r.status, data};
  } catch (e) {
    return {ok: false, status: 0, data: {}};
  }
}

// The message to show for a failed call, in the page's language: the page's
// own text for the error code, else (for the pages' own routes, which answer
// in the request's language) the server's message, else a generic one.
// `messages` (optional) are a form's own texts, looked up before the page's.
function errorText(result, serverTextIsTranslated, messages) {
  const m = Object.assign({}, pageMessages(), messages || {});
  if (result.status === 0) return m.network;
  const code = result.data && result.data.error;
  if (code && m[code]) return m[code];
  if (serverTextIsTranslated && result.data && result.data.message) return result.data.message;
  return m.generic;
}

// An element with attributes ("text": its text, "class": its classes) and
// children. Data from the server only ever becomes text, never markup.
function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") e.textContent = v; else if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

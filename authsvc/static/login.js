// The login forms: patients, physicians and institutions (rule logins) and
// staff, and the landing of a share's link.
//
// The slip's QR code opens PUBLIC_URL/#id=...&pw=...: the patient's form is
// filled from the fragment, which never reaches a server or its logs, and one
// tap on "Log in" is then enough.
//
// A share's link opens PUBLIC_URL/#share=<secret>: the page logs in with it at
// once (the link was made for exactly that, and a share only ever reads), and
// goes to the shared studies. If this browser already has a session, the
// page asks first (one tap), because the share's session replaces it here.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const all = pageMessages();
  const FIELDS = {patient: "patient_id", staff: "username", rule: "login"};

  for (const form of document.querySelectorAll("form.login-form")) {
    const kind = form.dataset.kind;
    const field = form.elements[FIELDS[kind]];
    const msg = form.querySelector(".message");
    const button = form.querySelector("button[type=submit]");
    const m = Object.assign({}, all, all[kind] || {});
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      let name = field.value.trim();
      // Rule logins are lower case only (a-z 0-9 - _ .): a phone's capital is forgiven.
      if (kind === "rule") name = name.toLowerCase();
      const password = form.elements.password.value;
      if (!name || !password) { msg.textContent = m.missing; return; }
      button.disabled = true;
      msg.textContent = "";
      const result = await postJson("/api/login", {[FIELDS[kind]]: name, password});
      button.disabled = false;
      if (!result.ok) { msg.textContent = errorText(result, false, all[kind]); form.elements.password.focus(); return; }
      form.elements.password.value = "";
      // Replace this history entry: "back" from the studies must not return
      // to a form filled with the password.
      location.replace(form.dataset.next);
    });
  }

  // After a logout the page says so once: the address loses its ?logged_out,
  // so that a reload or a bookmark does not say it again.
  if (document.getElementById("logged-out")) {
    const url = new URL(location.href);
    url.searchParams.delete("logged_out");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }

  const box = document.getElementById("share-box");
  const sm = Object.assign({}, all, all.share || {});
  const status = document.getElementById("share-status");
  const message = document.getElementById("share-message");
  const open = document.getElementById("share-open");
  let secret = null;

  // The fragment: read when the page opens, and again whenever it changes
  // (a slip's, a share's or the physicians' link opened in a tab already on
  // this page only changes the fragment: no new page is loaded).
  function fromFragment() {
    const frag = new URLSearchParams(location.hash.slice(1));
    const patientForm = document.querySelector('form.login-form[data-kind="patient"]');
    if (patientForm) {
      if (frag.get("id")) patientForm.patient_id.value = frag.get("id");
      if (frag.get("pw")) patientForm.password.value = frag.get("pw");
      if (frag.get("id") && frag.get("pw")) document.getElementById("login-button").focus();
    }
    const physician = document.getElementById("physician");
    if (physician && location.hash === "#physician") {
      physician.open = true;
      document.getElementById("rule-name").focus();
    }
    if (!box || frag.get("share") === null) return;
    secret = frag.get("share");
    box.hidden = false;
    document.getElementById("logins").hidden = true;
    if (box.dataset.loggedIn) {
      document.getElementById("share-ask").hidden = false;
      open.hidden = false;
      open.focus();
    } else {
      openShare();
    }
  }

  async function openShare() {
    open.disabled = true;
    message.textContent = "";
    status.textContent = sm.opening;
    const result = await postJson("/api/login", {share: secret});
    open.disabled = false;
    status.textContent = "";
    if (result.ok) { location.replace(box.dataset.next); return; }
    message.textContent = errorText(result, false, all.share);
    document.getElementById("share-ask").hidden = true;
    // A network failure or a pause after failures may pass: offer to try again.
    open.hidden = !(result.status === 0 || result.status === 429 || result.status >= 500);
  }
  if (open) open.addEventListener("click", openShare);
  window.addEventListener("hashchange", fromFragment);
  fromFragment();
});

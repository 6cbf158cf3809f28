// The two login forms (patient, staff). The patient's form is filled from
// the QR code's URL fragment (#id=...&pw=...), which never reaches a server
// or its logs: one tap on "Log in" is then enough.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login");
  const msg = document.getElementById("message");
  const kind = form.dataset.kind;
  if (kind === "patient") {
    const frag = new URLSearchParams(location.hash.slice(1));
    if (frag.get("id")) form.patient_id.value = frag.get("id");
    if (frag.get("pw")) form.password.value = frag.get("pw");
    if (frag.get("id") && frag.get("pw")) document.getElementById("login-button").focus();
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const m = pageMessages();
    const name = kind === "patient" ? form.patient_id.value.trim() : form.username.value.trim();
    const password = form.password.value;
    if (!name || !password) { msg.textContent = m.missing; return; }
    const body = kind === "patient" ? {patient_id: name, password} : {username: name, password};
    const button = document.getElementById("login-button");
    button.disabled = true;
    msg.textContent = "";
    const result = await postJson("/api/login", body);
    button.disabled = false;
    if (!result.ok) { msg.textContent = errorText(result, false); form.password.focus(); return; }
    form.password.value = "";
    // Replace this history entry: "back" from the studies must not return
    // to a form filled with the password.
    location.replace(form.dataset.next);
  });
});

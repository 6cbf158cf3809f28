// The patient's shares, on their portal: create a link for one study or all
// of them for a number of days (POST /api/shares), show it with its QR code
// and a copy button, list the active links and revoke any after a warning.
// The QR code is the server's SVG shown as an image (a data: URL): an image
// runs no script and loads nothing, and no markup is inserted into the page.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const $ = (id) => document.getElementById(id);
  const m = pageMessages();
  const cfg = $("share-data").dataset;
  const form = $("share-form"), list = $("share-list"), result = $("share-result");
  const message = $("share-message"), listMessage = $("share-list-message"), status = $("share-status");
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (all, k) => (k in values ? values[k] : all));
  let shownId = null;

  async function load() {
    let r;
    try { r = await fetch(cfg.listUrl, {credentials: "same-origin"}); }
    catch (e) { listMessage.textContent = m.network; return null; }
    if (r.status === 401) { location.replace("/"); return null; }
    if (!r.ok) { listMessage.textContent = m.generic; return null; }
    const data = await r.json();
    listMessage.textContent = "";
    const items = document.createDocumentFragment();
    for (const s of data.shares) {
      const revoke = h("button", {type: "button", class: "danger revoke", "data-share": String(s.id),
                                  "aria-label": fill(m.revoke_label, {what: s.what}), text: m.revoke});
      revoke.addEventListener("click", () => doRevoke(s));
      items.append(h("li", {class: "share", "data-share": String(s.id), "data-study": s.study || ""},
        h("strong", {class: "what", text: s.what}),
        h("span", {class: "until", text: fill(m.valid_until, {when: s.expires})}),
        h("span", {class: "muted made", text: fill(m.made, {when: s.created})}),
        h("span", {class: "muted used", text: s.used}),
        revoke));
    }
    list.replaceChildren(items);
    $("share-none").hidden = data.shares.length > 0;
    if (shownId !== null && !data.shares.some((s) => s.id === shownId)) {
      result.hidden = true;
      shownId = null;
    }
    return data.shares;
  }

  async function doRevoke(s) {
    if (!window.confirm(fill(m.revoke_warning, {what: s.what}))) return;
    const r = await postJson(s.revoke_url, {});
    if (!r.ok) { listMessage.textContent = errorText(r, false); return; }
    status.textContent = m.revoked;
    await load();
    const first = list.querySelector("button.revoke");
    (first || $("share-list-title")).focus();
  }

  function showLink(created, row) {
    shownId = created.id;
    $("share-url").value = created.url;
    $("share-result-what").textContent = fill(m.created, {what: row ? row.what : "", when: row ? row.expires : ""});
    $("share-copied").textContent = "";
    $("share-qr").src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(created.qr_svg);
    result.hidden = false;
    result.focus();
  }

  if (form) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      message.textContent = "";
      const days = Number(form.days.value);
      if (!Number.isInteger(days) || days < 1 || days > Number(cfg.maxDays)) {
        message.textContent = m.bad_field;
        form.days.focus();
        return;
      }
      const body = {days};
      if (form.study.value) body.study = form.study.value;
      const button = $("share-create");
      button.disabled = true;
      const r = await postJson(cfg.createUrl, body);
      button.disabled = false;
      if (!r.ok) {
        if (r.status === 401) { location.replace("/"); return; }
        message.textContent = errorText(r, false);
        return;
      }
      const shares = await load();
      showLink(r.data, (shares || []).find((s) => s.id === r.data.id));
    });
  }

  // "Share" on a study's card: that study, in the form above the list.
  for (const b of document.querySelectorAll("button.share-study")) {
    b.addEventListener("click", () => {
      if (!form) return;
      form.study.value = b.dataset.study;
      form.scrollIntoView({block: "start"});
      form.days.focus();
    });
  }

  $("share-copy").addEventListener("click", async () => {
    const input = $("share-url");
    let done = false;
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(input.value); done = true; } catch (e) { done = false; }
    }
    if (!done) {
      input.focus();
      input.select();
      try { done = document.execCommand("copy"); } catch (e) { done = false; }
    }
    $("share-copied").textContent = done ? m.copied : m.copy_failed;
  });
  // On a phone, hand the link to another app (messages, e-mail) directly.
  if (navigator.share) {
    const send = $("share-send");
    send.hidden = false;
    send.addEventListener("click", () => {
      navigator.share({url: $("share-url").value}).catch(() => {});
    });
  }
  $("share-url").addEventListener("focus", (ev) => ev.target.select());
  load();
});

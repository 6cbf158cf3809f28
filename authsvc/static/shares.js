// Staff: the patients' shared links (active, or all), with a revoke button
// after a warning (POST /api/shares/<id>/revoke).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const $ = (id) => document.getElementById(id);
  const m = pageMessages();
  const cfg = $("shares-data").dataset;
  const rows = $("rows"), q = $("q"), all = $("show-all"), message = $("message"), status = $("status");
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (x, k) => (k in values ? values[k] : x));

  async function load() {
    const url = cfg.sharesUrl + "?q=" + encodeURIComponent(q.value.trim()) + (all.checked ? "&all=1" : "");
    let r;
    try { r = await fetch(url, {credentials: "same-origin"}); }
    catch (e) { message.textContent = m.network; return; }
    if (r.status === 401 || r.status === 403) { location.replace(cfg.loginUrl); return; }
    if (!r.ok) { message.textContent = m.generic; return; }
    const data = await r.json();
    message.textContent = "";
    const body = document.createDocumentFragment();
    for (const s of data.shares) {
      const name = s.patient_name_text || s.patient_id;
      const cell = (label, ...c) => h("td", {"data-label": label}, ...c);
      const tr = h("tr", {"data-share": String(s.id), "data-patient": s.patient_id, "data-study": s.study || "",
                          class: "share state-" + s.state},
        cell(m.labels.patient, h("span", {text: name}), h("br"),
             h("span", {class: "muted patient-id", text: s.patient_id})),
        cell(m.labels.what, s.what),
        cell(m.labels.made, s.created),
        cell(m.labels.until, s.expires),
        cell(m.labels.state, h("span", {class: "share-state", text: s.state_text}), h("br"),
             h("span", {class: "muted share-used", text: s.used})));
      const actions = h("div", {class: "row-actions"});
      if (s.active) {
        const b = h("button", {type: "button", class: "danger revoke", "aria-label": fill(m.revoke_label, {name}),
                               text: m.revoke});
        b.addEventListener("click", async () => {
          if (!window.confirm(fill(m.revoke_warning, {name, what: s.what}))) return;
          const result = await postJson(s.revoke_url, {});
          if (!result.ok) { message.textContent = errorText(result, false); return; }
          status.textContent = m.revoked;
          await load();
          q.focus();
        });
        actions.append(b);
      }
      tr.append(cell(m.labels.actions, actions));
      body.append(tr);
    }
    rows.replaceChildren(body);
    $("empty").hidden = data.shares.length > 0;
  }

  let typing = null;
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  q.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(load, 300); });
  all.addEventListener("change", load);
  load();
});

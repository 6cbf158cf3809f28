// Admins: the audit log as people read it (GET /staff/api/audit's *_text fields: local time,
// patient, study, details in the page's language), filtered, with the same
// filters in the CSV export's link.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const $ = (id) => document.getElementById(id);
  const m = pageMessages();
  const cfg = $("audit-data").dataset;

  function query() {
    const q = new URLSearchParams();
    for (const name of ["event", "patient", "actor", "since", "until"]) {
      const value = $("f-" + name).value.trim();
      if (value) q.set(name, value);
    }
    return q;
  }

  async function load() {
    const q = query();
    const csv = new URLSearchParams(q);
    csv.set("format", "csv");
    csv.set("readable", "1");  // the columns people read, headed in the page's language
    $("csv").href = cfg.auditUrl + "?" + csv.toString();
    let r;
    try { r = await fetch(cfg.auditUrl + "?" + q.toString(), {credentials: "same-origin"}); }
    catch (e) { $("message").textContent = m.network; return; }
    if (r.status === 401 || r.status === 403) { location.replace(cfg.loginUrl); return; }
    if (r.status === 400) { $("message").textContent = m.bad_filter; return; }
    if (!r.ok) { $("message").textContent = m.generic; return; }
    $("message").textContent = "";
    const data = await r.json();
    const body = document.createDocumentFragment();
    for (const e of data.events) {
      const cell = (label, text) => h("td", {"data-label": label, text: text || "—"});
      const patient = [e.patient_id, e.patient_name].filter(Boolean).join(" — ");
      body.append(h("tr", {"data-event": e.event},
        cell(m.labels.at, e.at_text), cell(m.labels.event, e.event_name),
        cell(m.labels.actor, e.who), cell(m.labels.patient, patient),
        cell(m.labels.study, e.study || e.subject_text), cell(m.labels.address, e.address),
        cell(m.labels.detail, e.detail_text)));
    }
    $("rows").replaceChildren(body);
    $("empty").hidden = data.events.length > 0;
  }

  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  load();
});

// The staff dashboard: asks for the studies every few seconds and redraws the
// table only when something changed (keeping the keyboard focus), announces
// new studies, and links each row to its slip, its viewer and a reissue.
// Each row also names the rule logins (physicians, institutions) that see it.
// Above them, the studies held back as identity conflicts, for admins to resolve.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const $ = (id) => document.getElementById(id);
  const m = pageMessages();
  const cfg = $("dashboard-data").dataset;
  const rows = $("rows"), q = $("q"), paper = $("paper"), modality = $("f-modality"), message = $("message"), status = $("status");
  const chosenLang = {};   // patient ID -> slip language picked in this page
  let lastSignature = null, known = null, studies = [], batchUrl = null;
  function setBatchHref() {
    if (!batchUrl) return;
    const url = new URL(batchUrl, location.href);
    url.searchParams.set("layout", paper.value);
    url.searchParams.set("print", "1");
    $("batch-print").href = url.pathname + url.search;
  }
  paper.value = localStorage.getItem("slipPaper") || "a6";

  const fill = (text, name) => text.replace("{name}", name);
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v; else if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    e.append(...children);
    return e;
  }
  function slipHref(s) {
    const lang = chosenLang[s.patient_id] || s.slip_language;
    return s.slip_url + "&layout=" + encodeURIComponent(paper.value) +
      "&slip_lang=" + encodeURIComponent(lang) + "&print=1";
  }

  // A button's spoken name starts with its visible text (voice control:
  // "click Print slip"), the patient's name after it for screen readers.
  const named = (text, name) => [text, el("span", {class: "visually-hidden", text: " · " + name})];
  // Cells cut to one line at full width: the whole value in a tooltip.
  const oneLine = (text, cls) => el("span", {class: "one-line " + (cls || ""), title: text, text: text});

  function render(fresh) {
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.key : null;
    const body = document.createDocumentFragment();
    for (const s of studies) {
      const name = s.patient_name_text || s.patient_id;
      const tr = el("tr", {"data-study": s.orthanc_id, "data-patient": s.patient_id,
                           class: (fresh.has(s.orthanc_id) ? "new " : "") + "login-" + s.login});
      const cell = (label, cls, ...c) => el("td", {"data-label": label, class: cls}, ...c);
      const who = el("span", {class: "one-line", title: name + " · " + s.patient_id},
                     el("span", {class: "patient-name", text: name}), " ",
                     el("span", {class: "muted patient-id", text: s.patient_id}));
      tr.append(
        cell(m.labels.recorded, "recorded", s.recorded_text),
        cell(m.labels.patient, "patient", who),
        cell(m.labels.study, "study-cell", oneLine([s.date_text, s.modalities_text, s.description].filter(Boolean).join(" · "))),
        cell(m.labels.slip, "login", oneLine(s.login_text, "login state-" + s.login)),
        cell(m.labels.password, "password", s.password
          ? el("span", {class: "pw", text: s.password.join(" ")}) : "—"),
        cell(m.labels.rule_logins, "rules", s.rule_logins.length
          ? oneLine(s.rule_logins.join(", "), "rule-logins")
          : el("span", {class: "muted rule-logins", text: m.no_rule_logins})));
      const actions = el("div", {class: "row-actions"});
      if (s.login !== "none") {
        const select = el("select", {"aria-label": fill(m.slip_language, name), "data-key": "lang:" + s.orthanc_id,
                                     class: "slip-lang"});
        for (const [code, label] of Object.entries(m.languages)) {
          // The code on the row (the select's name says what it is), to keep
          // the row's actions on one line.
          const o = el("option", {value: code, lang: code, title: label, text: code.toUpperCase()});
          if (code === (chosenLang[s.patient_id] || s.slip_language)) o.selected = true;
          select.append(o);
        }
        actions.append(select);
        if (s.login === "pending") {
          // The password is kept: this prints it.
          const print = el("a", {class: "button print", href: slipHref(s), target: "_blank", rel: "noopener",
                                 "data-key": "print:" + s.orthanc_id}, ...named(m.print, name));
          select.addEventListener("change", () => { chosenLang[s.patient_id] = select.value; print.href = slipHref(s); });
          const reissue = el("button", {type: "button", class: "danger reissue", "data-key": "reissue:" + s.orthanc_id},
                             ...named(m.reissue, name));
          reissue.addEventListener("click", () => doReissue(s, name));
          actions.append(print, reissue);
        } else {
          // Printed (or given some other way): the password is gone, so a
          // reprint is a new password, said on the button and confirmed.
          select.addEventListener("change", () => { chosenLang[s.patient_id] = select.value; });
          const reprint = el("button", {type: "button", class: "secondary reprint", "data-key": "reprint:" + s.orthanc_id},
                             ...named(m.reprint, name));
          reprint.addEventListener("click", () => doReprint(s, name));
          actions.append(reprint);
        }
      }
      actions.append(el("a", {class: "button secondary view", href: s.viewer_url, "data-key": "view:" + s.orthanc_id},
                         ...named(m.view, name)));
      // A short label, so that the row's actions stay on one line at 1366 px;
      // the tooltip says it in full.
      const attach = el("button", {type: "button", class: "secondary attach-report", title: m.attach_long,
                                   "data-key": "attach:" + s.orthanc_id},
                        ...named(m.attach, name));
      attach.addEventListener("click", () => { attaching = {s, name}; reportFile.value = ""; reportFile.click(); });
      actions.append(attach);
      tr.append(cell(m.labels.actions, "actions-cell", actions));
      body.append(tr);
    }
    rows.replaceChildren(body);
    $("empty").hidden = studies.length > 0;
    if (focused) {
      const again = rows.querySelector('[data-key="' + CSS.escape(focused) + '"]');
      if (again) again.focus();
    }
  }

  function filterQuery() {
    // The newest 200: GET /api/studies answers 100 unless asked.
    const p = new URLSearchParams({q: q.value.trim(), limit: "200"});
    if ($("f-today").checked) p.set("today", "1");
    if ($("f-pending").checked) p.set("pending", "1");
    if (modality.value) p.set("modality", modality.value);
    return p.toString();
  }
  function fillModalities(codes) {
    const want = modality.value;
    const have = [...modality.options].slice(1).map((o) => o.value);
    if (JSON.stringify(have) === JSON.stringify(codes)) return;
    modality.replaceChildren(modality.options[0]);
    for (const c of codes) modality.append(el("option", {value: c, text: c}));
    modality.value = codes.includes(want) ? want : "";
  }

  async function refresh() {
    let r;
    try {
      r = await fetch(cfg.studiesUrl + "?" + filterQuery(), {credentials: "same-origin"});
    } catch (e) { message.textContent = m.network; return; }
    if (r.status === 401 || r.status === 403) { location.replace(cfg.loginUrl); return; }
    if (!r.ok) { message.textContent = m.generic; return; }
    const data = await r.json();
    message.textContent = "";
    fillModalities(data.modalities || []);
    // Every pending slip of the rows shown (the same filters), as one job.
    batchUrl = data.batch_url;
    setBatchHref();
    const signature = JSON.stringify(data.studies);
    if (signature === lastSignature) return;
    lastSignature = signature;
    const fresh = new Set();
    if (known) {
      for (const s of data.studies) if (!known.has(s.orthanc_id)) fresh.add(s.orthanc_id);
      const names = data.studies.filter((s) => fresh.has(s.orthanc_id)).map((s) => s.patient_name_text || s.patient_id);
      if (names.length) status.textContent = names.map((n) => fill(m.new_study, n)).join(". ");
    }
    known = new Set(data.studies.map((s) => s.orthanc_id));
    studies = data.studies;
    render(fresh);
  }

  // Studies held back as identity conflicts: shown above the studies, with
  // the reason; admins attach each to a login or make a separate login.
  let lastConflicts = null;
  function renderConflicts(list) {
    const body = document.createDocumentFragment();
    const L = m.conflict_labels;
    for (const c of list) {
      const cell = (label, ...children) => el("td", {"data-label": label}, ...children);
      const person = (name, id, born) => [el("span", {text: name || "—"}), el("br"),
        el("span", {class: "muted patient-id", text: id}),
        ...(born ? [el("br"), el("span", {class: "muted", text: m.born.replace("{date}", born)})] : [])];
      const actions = el("div", {class: "row-actions"});
      if (c.may_resolve) {
        for (const a of c.attach_choices) {
          const b = el("button", {type: "button", class: "secondary attach", "data-key": "attach:" + c.orthanc_id + ":" + a.patient_id,
                                  text: a.label});
          b.addEventListener("click", () => resolveConflict(c, {action: "attach", patient_id: a.patient_id},
                                                            m.confirm_attach.replace("{login}", a.patient_id)));
          actions.append(b);
        }
        const sep = el("button", {type: "button", class: "danger separate", "data-key": "separate:" + c.orthanc_id,
                                  text: c.separate_label});
        sep.addEventListener("click", () => resolveConflict(c, {action: "separate"},
                                                            m.confirm_separate.replace("{login}", c.separate_login_id)));
        actions.append(sep);
      } else {
        actions.append(el("span", {class: "muted", text: m.admins_resolve}));
      }
      body.append(el("tr", {"data-study": c.orthanc_id},
        cell(L.detected, c.detected_text),
        cell(L.study, [c.study_date_text, c.description, c.modalities_text].filter(Boolean).join(" · ")),
        cell(L.patient, ...person(c.patient_name_text, c.patient_id, c.birth_date_text)),
        cell(L.login, ...(c.login ? person(c.login_name_text, c.login, c.login_birth_date_text)
                                  : [el("span", {class: "muted", text: m.no_login_yet})])),
        cell(L.reason, el("span", {class: "reason", text: c.reason_text})),
        cell(L.actions, actions)));
    }
    $("conflict-rows").replaceChildren(body);
    $("conflicts").hidden = list.length === 0;
  }

  async function refreshConflicts() {
    let r;
    try { r = await fetch(cfg.conflictsUrl, {credentials: "same-origin"}); } catch (e) { return; }
    if (!r.ok) return;
    const data = await r.json();
    const signature = JSON.stringify(data.conflicts);
    if (signature === lastConflicts) return;
    lastConflicts = signature;
    renderConflicts(data.conflicts);
  }

  async function resolveConflict(c, body, question) {
    if (!window.confirm(question)) return;
    const result = await postJson(c.resolve_url, body);
    if (!result.ok) { message.textContent = errorText(result, true); return; }
    status.textContent = m.resolved.replace("{login}", result.data.patient_id);
    lastConflicts = null;
    await Promise.all([refreshConflicts(), refresh()]);
  }

  // Without a display key the server keeps no copy for the slip: the answer
  // is the only place the new password is ever shown, so it is shown here.
  function shownOnce(data, name) {
    if (!data || data.kept_for_slip !== false) return null;
    return fill(m.reissued_no_copy, name).replace("{password}", data.password);
  }

  async function doReissue(s, name) {
    if (!window.confirm(fill(m.reissue_warning, name))) return;
    const result = await postJson(s.reissue_url, {});
    if (!result.ok) { message.textContent = errorText(result, true); return; }
    status.textContent = shownOnce(result.data, name) || fill(m.reissued, name);
    await refresh();
  }

  // A report's PDF for the study chosen by its row's button: checked here
  // (size, signature) to say so at once, and again by the service.
  const reportFile = $("report-file");
  let attaching = null;
  reportFile.addEventListener("change", async () => {
    const file = reportFile.files[0], target = attaching;
    if (!file || !target) return;
    message.textContent = "";
    if (file.size > Number(cfg.reportMaxBytes)) { message.textContent = m.too_large; return; }
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (String.fromCharCode(...bytes.slice(0, 5)) !== "%PDF-") { message.textContent = m.not_a_pdf; return; }
    let text = "";
    for (let i = 0; i < bytes.length; i += 32768) text += String.fromCharCode(...bytes.subarray(i, i + 32768));
    const result = await postJson(target.s.report_url, {pdf: btoa(text)});
    if (!result.ok) { message.textContent = errorText(result, true); return; }
    status.textContent = fill(m.attached, target.name);
  });
  async function doReprint(s, name) {
    if (!window.confirm(fill(m.reprint_warning, name))) return;
    const result = await postJson(s.reissue_url, {});
    if (!result.ok) { message.textContent = errorText(result, true); return; }
    const once = shownOnce(result.data, name);
    if (once) { status.textContent = once; await refresh(); return; }
    // The new password's slip, printed at once (this tab: a window opened
    // after the request would be taken for a pop-up).
    location.assign(slipHref(s));
  }

  let typing = null;
  const search = () => { known = null; lastSignature = null; refresh(); };
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
  for (const f of [$("f-today"), $("f-pending"), modality]) f.addEventListener("change", search);
  q.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(search, 300); });
  paper.addEventListener("change", () => {
    localStorage.setItem("slipPaper", paper.value);
    setBatchHref();
    for (const a of rows.querySelectorAll("a.print")) {
      const s = studies.find((x) => x.orthanc_id === a.closest("tr").dataset.study);
      if (s) a.href = slipHref(s);
    }
  });
  refresh();
  refreshConflicts();
  window.setInterval(() => { refresh(); refreshConflicts(); }, Math.max(1, Number(cfg.pollSeconds) || 5) * 1000);
});

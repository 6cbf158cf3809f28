// Staff: the tag rules as the service applies them (GET /api/rules), read-only
// (the rules file's error, if it has one, is on the page in its language).
"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  const $ = (id) => document.getElementById(id);
  const m = pageMessages();
  const cfg = $("rules-data").dataset;
  let r;
  try { r = await fetch(cfg.rulesUrl, {credentials: "same-origin"}); }
  catch (e) { $("message").textContent = m.network; return; }
  if (r.status === 401 || r.status === 403) { location.replace(cfg.loginUrl); return; }
  if (!r.ok) { $("message").textContent = m.generic; return; }
  const data = await r.json();
  const body = document.createDocumentFragment();
  for (const login of data.logins) {
    const cell = (label, ...c) => h("td", {"data-label": label}, ...c);
    const state = !login.active ? ["disabled", m.disabled]
      : !login.has_password ? ["no-password", m.no_password] : ["ok", m.can_log_in];
    const rules = h("ul", {class: "rules"});
    for (const rule of login.rules) {
      const tag = rule.keyword ? rule.keyword + " (" + rule.tag + ")" : "(" + rule.tag + ")";
      rules.append(h("li", {}, h("code", {text: tag}), " = ", h("code", {text: rule.value})));
    }
    body.append(h("tr", {"data-login": login.login, class: "rule-login state-" + state[0]},
      cell(m.labels.login, h("strong", {text: login.login})),
      cell(m.labels.description, login.description || "—"),
      cell(m.labels.state, h("span", {class: "rule-state", text: state[1]})),
      cell(m.labels.rules, rules),
      cell(m.labels.studies, h("span", {class: "study-count", text: String(login.studies)}))));
  }
  $("rows").replaceChildren(body);
  $("empty").hidden = data.logins.length > 0;
});

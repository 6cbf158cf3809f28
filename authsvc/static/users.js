// Staff accounts (admins only): list, create, deactivate / activate.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const $ = (id) => document.getElementById(id);
  const m = pageMessages();
  const message = $("message"), status = $("status");
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => values[k]);

  function say(text) { status.textContent = text; status.hidden = false; }

  async function load() {
    const r = await fetch("/staff/api/users", {credentials: "same-origin"}).catch(() => null);
    if (!r) { message.textContent = m.network; return; }
    if (r.status === 401) { location.replace("/staff/login"); return; }
    if (!r.ok) { message.textContent = m.generic; return; }
    const data = await r.json();
    const body = document.createDocumentFragment();
    for (const u of data.users) {
      const tr = document.createElement("tr");
      tr.dataset.user = u.username;
      const cells = [u.username + (u.me ? " " + m.you : ""), m.roles[u.role] || u.role,
                     u.active ? m.active : m.inactive, u.created];
      for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.append(td); }
      const td = document.createElement("td");
      if (!u.me) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = u.active ? "danger" : "secondary";
        b.textContent = u.active ? m.deactivate : m.activate;
        b.setAttribute("aria-label", b.textContent + " " + u.username);
        b.addEventListener("click", async () => {
          if (u.active && !window.confirm(fill(m.deactivate_warning, {name: u.username}))) return;
          const result = await postJson("/staff/api/users/" + u.id, {active: !u.active});
          if (!result.ok) { message.textContent = errorText(result, true); return; }
          message.textContent = "";
          load();
        });
        td.append(b);
      }
      tr.append(td);
      body.append(tr);
    }
    $("rows").replaceChildren(body);
  }

  $("new-user").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const result = await postJson("/staff/api/users",
      {username: f.username.value.trim(), role: f.role.value, password: f.password.value});
    if (!result.ok) { message.textContent = errorText(result, true); return; }
    message.textContent = "";
    f.reset();
    say(result.data.password
      ? fill(m.created_password, {name: result.data.username, password: result.data.password})
      : fill(m.created, {name: result.data.username}));
    load();
  });
  load();
});

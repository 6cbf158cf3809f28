// The batch of pending slips: print them all as one job (at once when opened
// with ?print=1), then ask whether they printed well before their passwords
// are wiped, all in one request.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const $ = (id) => document.getElementById(id);
  const data = $("slip-data").dataset;
  const m = pageMessages();
  const batch = JSON.parse($("batch").textContent);
  const message = $("message");

  $("layout").addEventListener("change", () => $("slip-options").submit());
  function print() {
    message.textContent = "";
    window.print();
    $("confirm").hidden = false;
    $("printed").focus();
  }
  if ($("print")) $("print").addEventListener("click", print);
  $("print-again").addEventListener("click", print);
  $("printed").addEventListener("click", async () => {
    const result = await postJson(data.printedUrl, {slips: batch});
    if (!result.ok) { message.textContent = errorText(result, true); return; }
    $("confirm").hidden = true;
    if (result.data.changed.length) message.textContent = m.changed.replace("{ids}", result.data.changed.join(", "));
    // The passwords leave the page too.
    $("slip-area").remove();
    if ($("print")) $("print").remove();
    $("done").hidden = false;
    $("done").focus();
  });
  if (data.autoPrint) window.setTimeout(print, 300);
});

// The slip page: print (at once when opened with ?print=1), then ask whether
// it printed well before the password is wiped; reissue after a warning.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const data = document.getElementById("slip-data").dataset;
  const $ = (id) => document.getElementById(id);
  const message = $("message");
  const confirmBox = $("confirm");

  for (const id of ["layout", "slip_lang"]) $(id).addEventListener("change", () => $("slip-options").submit());

  function print() {
    message.textContent = "";
    window.print();
    // The print dialog is closed when print() returns: printed or not, ask.
    confirmBox.hidden = false;
    $("printed").focus();
  }
  if ($("print")) $("print").addEventListener("click", print);
  if ($("print-again")) $("print-again").addEventListener("click", print);

  if ($("printed")) $("printed").addEventListener("click", async () => {
    const result = await postJson(data.printedUrl, {language: data.lang, password_set_at: data.setAt});
    if (!result.ok) { message.textContent = errorText(result, true); return; }
    confirmBox.hidden = true;
    // The password leaves the page too.
    const area = $("slip-area");
    if (area) area.remove();
    if ($("print")) $("print").remove();
    $("done").hidden = false;
    $("done").focus();
  });

  if ($("reissue")) $("reissue").addEventListener("click", async () => {
    if (!window.confirm(pageMessages().reissue_warning)) return;
    const result = await postJson(data.reissueUrl, {});
    if (!result.ok) { message.textContent = errorText(result, true); return; }
    if (result.data && result.data.kept_for_slip === false) {
      // No display key: no slip can show it, so this is the only time it is shown.
      message.textContent = pageMessages().reissued_no_copy.replace("{password}", result.data.password);
      return;
    }
    const url = new URL(location.href);
    url.searchParams.delete("print");
    location.replace(url.toString());
  });

  if (data.autoPrint) window.setTimeout(print, 300);
});

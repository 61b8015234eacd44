// The Add-user form of /admin/users (templates/users.html).
//
// stepupForm (stepup.js, served by stepup.ScriptHandler) submits it by
// fetch. When admin mode has ended, the POST gets the RFC 9470 401: the
// step-up runs in a popup, opened within the click, and the same POST is
// sent again once, so that nothing typed is lost. If the step-up fails or
// the popup is closed, the form keeps its input and the error shows in its
// [data-stepup-error] element. Without JavaScript the form submits as a
// plain form, and the 401 names the step-up.
//
// It is a module file, not an inline script, so that the pages' CSP can be
// script-src 'self'.
import { stepupForm } from "/stepup/stepup.js";

const form = document.getElementById("add-user-form");
if (form) {
  // One submission at a time: a second click while the popup is open would
  // send the popup back to a blank page, and could add the user twice.
  let busy = false;
  form.addEventListener("submit", (e) => {
    if (busy) {
      e.preventDefault();
      e.stopImmediatePropagation();
      return;
    }
    busy = true;
    const shown = form.querySelector("[data-stepup-error]");
    if (shown) shown.textContent = "";
  });
  form.addEventListener("stepup:error", () => { busy = false; });
  stepupForm(form); // after the listener above, which must run first
}

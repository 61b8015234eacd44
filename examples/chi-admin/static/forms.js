// The forms of /admin/users (templates/users.html) marked data-stepup-form:
// Add user, and each user's Delete.
//
// stepupForm (stepup.js, served by stepup.ScriptHandler) submits them by
// fetch. When the POST gets the RFC 9470 401 (admin mode has ended, or a
// Delete has no approval of that very deletion yet), the step-up runs in a
// popup, opened within the click, and the same POST is sent again once, so
// that nothing typed is lost and the Delete that was approved is the one
// that runs. If the step-up fails or the popup is closed, the form keeps
// its input and the error shows in its [data-stepup-error] element.
// Without JavaScript the forms submit as plain forms, and the 401 names
// the step-up.
//
// It is a module file, not an inline script, so that the pages' CSP can be
// script-src 'self'.
import { stepupForm } from "/stepup/stepup.js";

for (const form of document.querySelectorAll("form[data-stepup-form]")) {
  // One submission at a time: a second click while the popup is open would
  // send the popup back to a blank page, and could post twice.
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

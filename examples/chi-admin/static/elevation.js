// The elevation card of the console's pages (templates/layout.html).
//
// It counts down to the instant the guard stops honouring the elevation
// (data-ends on #countdown: the deadline minus the clock skew, in Unix
// seconds), and polls GET /elevation every two seconds, so that admin mode
// ended elsewhere shows within seconds: a logout at the IdP (back-channel
// logout), a security event (CAEP), an operator's revocation, "End admin
// mode" in another tab, on this replica or another. The card changes in
// place; the page is never reloaded, so nothing typed into a form is lost.
//
// It is a file, not an inline script, so that the pages' CSP can be
// script-src 'self'.
(function () {
  "use strict";
  var card = document.getElementById("elevation");
  var countdown = document.getElementById("countdown");
  if (!card || !countdown) {
    return;
  }
  var pollEvery = 2000; // ms
  var ends = Number(countdown.dataset.ends);
  var ended = false;
  var poller = null;

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) {
      el.textContent = text;
    }
  }

  // end shows that admin mode is over, and stops the countdown and the
  // polling: the next admin action asks for a step-up anyway.
  function end(why) {
    if (ended) {
      return;
    }
    ended = true;
    if (poller !== null) {
      clearInterval(poller);
    }
    card.className = "card ended";
    setText("elevation-title", "Admin mode ended");
    countdown.textContent = "ended: " + why + "your next admin action asks you to step up again";
    var badge = document.getElementById("admin-badge");
    if (badge) {
      badge.textContent = "admin mode ended";
      badge.className = "badge ended";
    }
  }

  function tick() {
    if (ended) {
      return;
    }
    // The server honours the elevation while now < ends, in whole seconds.
    var left = Math.ceil(ends - Date.now() / 1000);
    if (left <= 0) {
      end("");
      return;
    }
    var m = Math.floor(left / 60), s = left % 60;
    countdown.textContent = (m ? m + " min " : "") + s + " s";
    setTimeout(tick, 1000);
  }

  function poll() {
    if (ended) {
      return;
    }
    fetch("/elevation", {headers: {"Accept": "application/json"}, cache: "no-store", credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; }) // a busy or failed poll changes nothing
      .then(function (st) {
        if (!st || ended) {
          return;
        }
        if (!st.elevated) {
          // Ended before its time: by the IdP, an operator, or another tab.
          end(Date.now() / 1000 < ends - 1 ? "admin mode was ended elsewhere (a sign-out at the IdP, a revocation, or another tab); " : "");
          return;
        }
        if (st.ends !== ends) { // stepped up again in another tab
          ends = st.ends;
          countdown.dataset.ends = String(ends);
          setText("ends-at", st.ends_at);
          setText("acr", st.acr);
          setText("amr", st.amr);
          setText("bound", st.bound);
        }
      })
      .catch(function () {});
  }

  tick();
  poller = setInterval(poll, pollEvery);
  // A tab in the background polls less often, if at all; look again as
  // soon as it is shown.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      poll();
    }
  });
})();

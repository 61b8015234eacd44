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
// "Extend admin mode" steps up again in a popup before admin mode runs out
// (stepup's display=popup): the card then shows the new end, still without
// a reload. Without JavaScript the same link is the full-page step-up.
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
  var ticker = null;

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
    setText("extend-admin", "Step up again");
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
    ticker = setTimeout(tick, 1000);
  }

  // revive turns an ended card back on, after a step-up in the popup.
  function revive() {
    ended = false;
    card.className = "card elevated";
    setText("elevation-title", "Admin mode is on");
    setText("extend-admin", "Extend admin mode");
    var badge = document.getElementById("admin-badge");
    if (badge) {
      badge.textContent = "admin mode";
      badge.className = "badge";
    }
    clearTimeout(ticker);
    tick();
    poller = setInterval(poll, pollEvery);
  }

  // poll asks GET /elevation how admin mode stands. Once the card says
  // ended it stops, unless afterStepUp: a step-up just granted in the popup
  // may turn the card back on.
  function poll(afterStepUp) {
    if (ended && afterStepUp !== true) {
      return;
    }
    fetch("/elevation", {headers: {"Accept": "application/json"}, cache: "no-store", credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; }) // a busy or failed poll changes nothing
      .then(function (st) {
        if (!st || (ended && !(afterStepUp === true && st.elevated))) {
          return;
        }
        if (!st.elevated) {
          // Ended before its time: by the IdP, an operator, or another tab.
          end(Date.now() / 1000 < ends - 1 ? "admin mode was ended elsewhere (a sign-out at the IdP, a revocation, or another tab); " : "");
          return;
        }
        if (st.ends !== ends) { // stepped up again, in the popup or in another tab
          ends = st.ends;
          countdown.dataset.ends = String(ends);
          setText("ends-at", st.ends_at);
          setText("acr", st.acr);
          setText("amr", st.amr);
          setText("bound", st.bound);
        }
        // The device key's registration lands after the page loaded.
        var device = document.getElementById("device-bound");
        if (device && device.dataset.bound !== String(st.device_bound)) {
          device.dataset.bound = String(st.device_bound);
          device.textContent = st.device_bound ? "bound to this browser's key" : "not bound to this device";
        }
        if (ended) {
          revive();
        }
      })
      .catch(function () {});
  }

  // "Extend admin mode": a fresh step-up in a popup opened within the
  // click, as stepup.js does for a form. The callback's popup page posts
  // the result to this window; only a message from that popup, from this
  // page's origin and with this click's ref counts (or one on the "stepup"
  // BroadcastChannel with the ref, which a cut opener still hears). On a
  // grant, GET /elevation gives the card its new end. A blocked popup falls
  // back to the link itself: the full-page step-up, back to this page.
  var extend = document.getElementById("extend-admin");
  var current = null; // the step-up under way: its popup, and how to stop listening
  function extendStatus(text) {
    setText("extend-status", text);
  }
  if (extend) {
    extend.addEventListener("click", function (e) {
      e.preventDefault();
      if (current && !current.popup.closed) {
        current.popup.focus();
        return;
      }
      if (current) {
        current.stop(); // closed by the user a moment ago
      }
      // Names this step-up, so that only its own result counts. The page
      // is a secure context (stepup requires https, or plain http on
      // loopback), where crypto.randomUUID exists.
      var ref = crypto.randomUUID();
      var url = new URL(extend.href);
      url.searchParams.set("display", "popup");
      url.searchParams.set("ref", ref);
      var popup = window.open(url.href, "stepup", "popup,width=520,height=700");
      if (!popup) {
        location.assign(extend.href);
        return;
      }
      var bc = null, shut = 0, watch;
      function stop() {
        clearInterval(watch);
        window.removeEventListener("message", onMessage);
        if (bc) {
          bc.close();
        }
        current = null;
      }
      function done(m) {
        stop();
        if (!m) {
          extendStatus("The step-up window was closed; admin mode was not extended.");
        } else if (m.type === "stepup:granted") {
          extendStatus("");
          poll(true);
          // Once more, in case that poll found the session busy.
          setTimeout(function () { poll(true); }, pollEvery);
        } else {
          extendStatus("The step-up failed (" + m.reason + "); admin mode was not extended.");
        }
      }
      function settle(m) {
        if (m && m.ref === ref && (m.type === "stepup:granted" || m.type === "stepup:denied")) {
          done(m);
        }
      }
      function onMessage(ev) {
        if (ev.source === popup && ev.origin === location.origin) {
          settle(ev.data);
        }
      }
      window.addEventListener("message", onMessage);
      try {
        bc = new BroadcastChannel("stepup");
        bc.onmessage = function (ev) { settle(ev.data); };
      } catch (err) {}
      // Closed twice in a row: the popup page closes itself right after it
      // posted, and its message may still be on its way.
      watch = setInterval(function () {
        shut = popup.closed ? shut + 1 : 0;
        if (shut > 1) {
          done(null);
        }
      }, 300);
      current = {popup: popup, stop: stop};
      extendStatus("Step up in the new window to extend admin mode.");
    });
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

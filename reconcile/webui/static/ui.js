// The fleet page's only script: it refreshes <main id="content"> in place
// from the same URL (the server answers its content alone when asked with
// X-Upkeep-Fragment: 1) and counts bake times down. No framework, no build.
(function () {
  "use strict";
  var main = document.getElementById("content");
  var status = document.getElementById("refresh-status");
  if (!main) { return; }
  var every = parseInt(main.getAttribute("data-refresh") || "0", 10);
  var seconds = String(Math.round(every / 100) / 10);

  function say(text) { if (status) { status.textContent = text; } }

  function countdowns() {
    var now = Date.now();
    var els = document.querySelectorAll("[data-until]");
    for (var i = 0; i < els.length; i++) {
      var left = Math.max(0, Math.round((Date.parse(els[i].getAttribute("data-until")) - now) / 1000));
      var h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
      els[i].textContent = left === 0 ? "now" : (h > 0 ? h + "h " + m + "m" : (m > 0 ? m + "m " + s + "s" : s + "s"));
    }
  }

  var busy = false, stopped = false;
  function refresh() {
    if (busy || stopped || document.hidden) { return; }
    // Do not replace the form the operator is typing in.
    var active = document.activeElement;
    if (active && main.contains(active) && (active.tagName === "INPUT" || active.tagName === "SELECT")) { return; }
    busy = true;
    fetch(window.location.href, { headers: { "X-Upkeep-Fragment": "1" }, credentials: "same-origin", cache: "no-store", redirect: "error" })
      .then(function (r) {
        if (r.status === 401) { stopped = true; say("Signed out: reload the page to sign in again."); return null; }
        if (!r.ok) { say("Refresh failed (" + r.status + "); retrying."); return null; }
        return r.text();
      })
      .then(function (html) {
        if (html === null || html === undefined) { return; }
        main.innerHTML = html;
        countdowns();
        say("Updated " + new Date().toLocaleTimeString() + "; every " + seconds + " s.");
      })
      .catch(function () { say("The server did not answer; retrying."); })
      .then(function () { busy = false; });
  }

  countdowns();
  window.setInterval(countdowns, 1000);
  if (every > 0) {
    say("Refreshes every " + seconds + " s.");
    window.setInterval(refresh, every);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
  }
})();

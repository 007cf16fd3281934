// kta's page glue, the few things htmx does not do by itself, in four files run in this order (base.html):
// kta.js (this): errors in words, the live feed's state, the activity list, the status bar's newest answer;
// kta-rows.js: SSE rows merged into their tables, the one day P&L, panels refreshed on live events;
// kta-charts.js: the price chart and the P&L curve; kta-keys.js: preferences, shortcuts, the phone's menu.
// What one calls of another is on ``window.kta`` (looked up when called: every file has run by then).
(function () {
  "use strict";
  var kta = window.kta = window.kta || {};

  // ---- errors ---------------------------------------------------------------------------
  function showError(text) {
    var box = document.getElementById("flash");
    if (!box) { return; }
    box.textContent = text;
    box.classList.add("show");
  }
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr;
    var text = (xhr.responseText || "").replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
    try {
      var j = JSON.parse(xhr.responseText);
      text = j.detail || j.message || text;
      if (j.field) { text += " (field: " + j.field + ")"; }
    } catch (err) { /* not JSON: keep the text */ }
    showError("Error " + xhr.status + ": " + (text || xhr.statusText || "request failed"));
  });
  document.addEventListener("htmx:sendError", function () {
    showError("Cannot reach the gateway: check your connection.");
  });
  // The dashboard's own feed: the pill says it; the activity list gets one line, replaced in place
  // ("lost" then "restored"), never a line per retry and none for the first connect.
  var feedUp = null;
  function feedState(up) {
    var pill = document.getElementById("sse-pill");
    if (up === feedUp) { return; }
    var first = feedUp === null;
    feedUp = up;
    if (pill) {
      pill.className = up ? "pill ok" : "pill bad";
      pill.textContent = up ? "live feed" : "live feed lost, retrying";
    }
    if (first && up) { return; }
    var li = document.createElement("li");
    li.dataset.key = "dashboard-feed";
    if (!up) { li.className = "sev-warning"; }
    li.textContent = new Date().toLocaleTimeString("en-GB", { hour12: false, timeZone: "Asia/Kolkata" }) + " · " +
      (up ? "dashboard live feed restored" : "dashboard live feed lost: reconnecting");
    addEvent(li);
  }
  // Activity lines with a data-key replace the previous line of the same key (a feed's state, a
  // worker's state, one alert): the list shows what is, not every retry.
  function addEvent(li) {
    var events = document.getElementById("events");
    if (!events) { return; }
    var key = li.dataset.key;
    if (key) {
      Array.prototype.forEach.call(events.querySelectorAll("li"), function (old) {
        if (old.dataset.key === key) { old.remove(); }
      });
    }
    flash(li, "fresh", 1200);
    events.insertBefore(li, events.firstChild);
    while (events.children.length > 50) { events.removeChild(events.lastElementChild); }
  }
  document.addEventListener("htmx:sseError", function () { feedState(false); });
  document.addEventListener("htmx:sseOpen", function () { feedState(true); });
  document.addEventListener("click", function (e) {
    if (e.target.id === "flash") { e.target.classList.remove("show"); }
    if (e.target.matches && e.target.matches("[data-remove-chip]")) { e.target.closest(".chip").remove(); }
    if (e.target.matches && e.target.matches("[data-close]")) {
      var box = document.getElementById(e.target.dataset.close);
      if (box) { box.innerHTML = ""; }
    }
  });

  // The status bar carries the time its answer was gathered (data-ts): an answer that started before
  // a Stop (a poll in flight) must not overwrite the state the Stop's own reply showed.
  function statusTs(html) {
    var m = /id="status-bar"[^>]*data-ts="(\d+)"/.exec(html || "");
    return m ? BigInt(m[1]) : null;
  }
  document.addEventListener("htmx:beforeSwap", function (e) {
    var current = document.getElementById("status-bar");
    if (!current || e.detail.target !== current || !current.dataset.ts) { return; }
    var incoming = statusTs(e.detail.serverResponse);
    if (incoming !== null && incoming < BigInt(current.dataset.ts)) { e.detail.shouldSwap = false; }
  });
  // A report (after Stop) or any panel marked data-reveal scrolls into view when it arrives.
  document.addEventListener("htmx:afterSwap", function (e) {
    var shown = e.detail.target && e.detail.target.querySelector ? e.detail.target.querySelector("[data-reveal]") : null;
    if (shown) { shown.scrollIntoView({ block: "start", behavior: "smooth" }); }
  });

  // Lit for a moment, then cleared: two repaints, where a CSS fade animated every frame.
  function flash(el, cls, ms) {
    el.classList.add(cls);
    setTimeout(function () { el.classList.remove(cls); }, ms);
  }
  kta.flash = flash;
  kta.addEvent = addEvent;
})();

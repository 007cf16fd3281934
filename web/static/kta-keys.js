// Preferences applied on save, keyboard shortcuts, the top bar's menu on a phone.
(function () {
  "use strict";
  // ---- preferences and keyboard shortcuts ------------------------------------------------
  // Saving the preferences applies them at once (the server remembers them for every next page).
  document.addEventListener("htmx:afterSwap", function (e) {
    var saved = document.getElementById("prefs-saved");
    if (!saved || !e.detail.target || e.detail.target.id !== "prefs" && !e.detail.target.contains(saved)) { return; }
    document.documentElement.dataset.theme = saved.dataset.themeNow;
    document.body.dataset.shortcuts = saved.dataset.shortcutsNow;
  });

  // Single keys (no modifier, never while typing): / search, s Start, x Stop, h Halt, o order,
  // g then d/o/t/, to go to the dashboard/orders/trades/settings. Confirmations stay (Stop, Halt).
  var GO = { d: "/", o: "/orders", t: "/trades", ",": "/settings" }, pendingGo = false;
  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }
  function press(id) {
    var el = document.getElementById(id);
    if (el && !el.disabled) { el.click(); return true; }
    return false;
  }
  function focus(id) {
    var el = document.getElementById(id);
    if (el) { el.focus(); if (el.select) { el.select(); } return true; }
    return false;
  }
  document.addEventListener("keydown", function (e) {
    if (document.body.dataset.shortcuts !== "on" || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) { return; }
    var key = e.key, done = false;
    if (pendingGo) {
      pendingGo = false;
      if (GO[key]) { window.location.assign(GO[key]); done = true; }
    } else if (key === "g") { pendingGo = true; done = true; }
    else if (key === "/") { done = focus("symbol-search") || focus("order-symbol-search"); }
    else if (key === "s") { done = press("start"); }
    else if (key === "x") { done = press("stop"); }
    else if (key === "h") { done = press("halt"); }
    else if (key === "o") { done = focus("order-symbol-search") || (window.location.assign("/orders#order-entry"), true); }
    if (done) { e.preventDefault(); }
  });

  // ---- the top bar's menu on a phone (the pages and the account fold into it) --------------
  function menuOpen(open) {
    var bar = document.getElementById("topbar"), button = document.getElementById("menu-toggle");
    if (!bar || !button) { return; }
    bar.classList.toggle("open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }
  document.addEventListener("click", function (e) {
    if (!e.target.closest) { return; }
    if (e.target.closest("#menu-toggle")) {
      menuOpen(!document.getElementById("topbar").classList.contains("open"));
    } else if (!e.target.closest("#top-menu")) {
      menuOpen(false);  // a tap anywhere else closes it
    }
  });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") { menuOpen(false); } });
})();

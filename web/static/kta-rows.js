// SSE rows (ticks, signals, orders) merged into their table by id, changed cells flashed; every day P&L
// figure shows the newest one; panels refreshed on live events. Uses kta.flash, kta.addEvent (kta.js) and
// kta.feedChart, kta.addPnl (kta-charts.js).
(function () {
  "use strict";
  var kta = window.kta = window.kta || {};

  // ---- row merging ----------------------------------------------------------------------
  function parseRows(html) {
    var t = document.createElement("template");
    t.innerHTML = "<table><tbody>" + html + "</tbody></table>";
    return Array.prototype.slice.call(t.content.querySelectorAll("tbody > tr"));
  }

  function flashChanged(oldRow, newRow) {
    var olds = oldRow.querySelectorAll("td[data-v]");
    for (var i = 0; i < olds.length; i++) {
      var cell = newRow.querySelector('td[data-k="' + olds[i].dataset.k + '"]');
      if (!cell || cell.dataset.v === olds[i].dataset.v) { continue; }
      var a = parseFloat(olds[i].dataset.v), b = parseFloat(cell.dataset.v);
      kta.flash(cell, isNaN(a) || isNaN(b) || b >= a ? "up" : "down", 800);
    }
  }

  // An order's row never goes back in its life (a final state, then a late or re-read "OPEN"): a row with a
  // data-rank is replaced only by one of the same or a later rank (then more filled, or the same).
  function older(row, old) {
    if (!row.dataset.rank || !old.dataset.rank) { return false; }
    var a = +row.dataset.rank, b = +old.dataset.rank;
    return a < b || (a === b && +(row.dataset.qty || 0) < +(old.dataset.qty || 0));
  }

  function mergeRows(tbody, html, mode) {
    var rows = parseRows(html);
    var empty = tbody.querySelector("tr.empty-row");
    if (empty && rows.length) { empty.remove(); }
    rows.forEach(function (row) {
      var old = row.id ? document.getElementById(row.id) : null;
      if (old && older(row, old)) { return; }
      if (old) {
        flashChanged(old, row);
        old.replaceWith(row);
      } else if (mode === "prepend") {
        kta.flash(row, "fresh", 1200);
        tbody.insertBefore(row, tbody.firstChild);
      } else {
        tbody.appendChild(row);
      }
      htmx.process(row);
      kta.feedChart(row);
    });
    var limit = parseInt(tbody.dataset.limit || "0", 10);
    while (limit && tbody.rows.length > limit) { tbody.deleteRow(mode === "prepend" ? -1 : 0); }
  }

  // The stream starts when it opens: what happened between the page's render and then (an order placed and
  // filled in that moment) is read again once the stream is open (each reconnect too) and merged, so a row
  // does not stay "SUBMITTING" for good. ``data-resync`` names the partial whose same-id element has the rows.
  document.addEventListener("htmx:sseOpen", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-resync]"), function (tbody) {
      fetch(tbody.dataset.resync, { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (html) {
          var t = document.createElement("template");
          t.innerHTML = html;
          var fresh = t.content.getElementById(tbody.id);
          if (fresh && fresh.querySelector("tr:not(.empty-row)")) { mergeRows(tbody, fresh.innerHTML, tbody.dataset.merge); }
        });
    });
  });

  document.addEventListener("htmx:sseBeforeMessage", function (e) {
    var target = e.target;
    if (!target.dataset || !target.dataset.merge) { return; }
    e.preventDefault();
    if (target.dataset.merge === "events") {
      var t = document.createElement("template");
      t.innerHTML = e.detail.data;
      Array.prototype.forEach.call(t.content.querySelectorAll("li"), kta.addEvent);
      return;
    }
    mergeRows(target, e.detail.data, target.dataset.merge);
  });

  document.addEventListener("htmx:sseMessage", function (e) {
    var target = e.target;
    var pnl = target.querySelector ? target.querySelector("[data-day-pnl]") : null;
    if (pnl) { kta.addPnl(parseInt(pnl.dataset.exchangeTs, 10), parseInt(pnl.dataset.dayPnl, 10)); }
  });

  // ---- one day P&L -----------------------------------------------------------------------
  // The Risk panel (the kill switch's figure, moved by kta's own fills and ticks between broker reads),
  // the Positions panel (the broker's read) and P&L by strategy each draw the day P&L from what they
  // were sent, at different moments. They are one figure (Kite's m2m as kta knows it): every element
  // marked data-pnl="day|realised|unrealised" shows the newest of its kind (data-pnl-ts, epoch ns).
  function oneDayPnl() {
    var kinds = {};
    Array.prototype.forEach.call(document.querySelectorAll("[data-pnl][data-pnl-ts]"), function (el) {
      (kinds[el.dataset.pnl] = kinds[el.dataset.pnl] || []).push(el);
    });
    Object.keys(kinds).forEach(function (kind) {
      var els = kinds[kind], newest = els[0];
      els.forEach(function (el) { if (BigInt(el.dataset.pnlTs || "0") > BigInt(newest.dataset.pnlTs || "0")) { newest = el; } });
      var source = newest.querySelector(".value");
      if (!source) { return; }
      els.forEach(function (el) {
        var value = el.querySelector(".value");
        if (el === newest || !value) { return; }
        value.textContent = source.textContent;
        value.className = source.className;
        el.dataset.pnlTs = newest.dataset.pnlTs;  // newest as shown: a late, older event does not undo it
      });
    });
  }
  document.addEventListener("DOMContentLoaded", oneDayPnl);
  document.addEventListener("htmx:afterSettle", oneDayPnl);
  document.addEventListener("htmx:sseMessage", oneDayPnl);

  // ---- panels that re-fetch themselves on live events --------------------------------------
  // <div id="x" data-refresh="orders:1000, positions:5000" hx-get="…" hx-trigger="kta:refresh" …>: an SSE
  // event named there schedules one "kta:refresh" of the element with that id within its interval, and
  // every event is followed by one (a throttle that keeps the last call). The element is looked up when
  // the refresh fires, so none is lost to an element swapped away meanwhile: htmx issues no request for
  // an element no longer in the page, and its own throttle drops the events inside its window.
  var refreshTimers = {}, sources = typeof WeakSet === "function" ? new WeakSet() : null;
  function refreshSoon(id, wait) {
    if (refreshTimers[id]) { return; }
    refreshTimers[id] = setTimeout(function () {
      delete refreshTimers[id];
      var el = document.getElementById(id);
      if (el && el.dataset.refresh && window.htmx) { window.htmx.trigger(el, "kta:refresh"); }
    }, wait);
  }
  function onLiveEvent(name) {
    var pattern = new RegExp("(?:^|[ ,])" + name + ":(\\d+)");
    Array.prototype.forEach.call(document.querySelectorAll("[data-refresh]"), function (el) {
      var m = el.id && el.dataset.refresh.match(pattern);
      if (m) { refreshSoon(el.id, parseInt(m[1], 10)); }
    });
  }
  document.addEventListener("htmx:sseOpen", function (e) {
    var source = e.detail && e.detail.source;
    if (!source || !sources || sources.has(source)) { return; }  // a reconnect reopens the same source
    sources.add(source);
    ["orders", "positions", "risk", "status", "signals", "alerts"].forEach(function (name) {
      source.addEventListener(name, function () { onLiveEvent(name); });
    });
  });
})();

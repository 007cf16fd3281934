// kta dashboard glue: the few things htmx does not do by itself.
// 1. Errors of htmx requests are shown in words (the #flash box).
// 2. SSE rows (ticks, signals, orders) are merged into their table by id; changed cells flash.
// 3. The price chart and the P&L curve are fed from the same rows (data-* attributes).
(function () {
  "use strict";

  // ---- 1. errors ---------------------------------------------------------------------------
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
  var feedUp = null;
  function feedState(up) {
    var pill = document.getElementById("sse-pill"), events = document.getElementById("events");
    if (up === feedUp) { return; }
    feedUp = up;
    if (pill) {
      pill.className = up ? "pill ok" : "pill bad";
      pill.textContent = up ? "live feed" : "live feed lost, retrying";
    }
    if (events) {
      var li = document.createElement("li");
      li.textContent = new Date().toLocaleTimeString("en-GB", { hour12: false, timeZone: "Asia/Kolkata" }) + " · " +
        (up ? "dashboard live feed connected" : "dashboard live feed lost: reconnecting");
      events.insertBefore(li, events.firstChild);
    }
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

  // ---- 2. row merging ----------------------------------------------------------------------
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
      cell.classList.add(isNaN(a) || isNaN(b) || b >= a ? "up" : "down");
    }
  }

  function mergeRows(tbody, html, mode) {
    var rows = parseRows(html);
    var empty = tbody.querySelector("tr.empty-row");
    if (empty && rows.length) { empty.remove(); }
    rows.forEach(function (row) {
      var old = row.id ? document.getElementById(row.id) : null;
      if (old) {
        flashChanged(old, row);
        old.replaceWith(row);
      } else if (mode === "prepend") {
        row.classList.add("fresh");
        tbody.insertBefore(row, tbody.firstChild);
      } else {
        tbody.appendChild(row);
      }
      htmx.process(row);
      feedChart(row);
    });
    var limit = parseInt(tbody.dataset.limit || "0", 10);
    while (limit && tbody.rows.length > limit) { tbody.deleteRow(mode === "prepend" ? -1 : 0); }
  }

  document.addEventListener("htmx:sseBeforeMessage", function (e) {
    var target = e.target;
    if (!target.dataset || !target.dataset.merge) { return; }
    e.preventDefault();
    mergeRows(target, e.detail.data, target.dataset.merge);
  });

  document.addEventListener("htmx:sseMessage", function (e) {
    var target = e.target;
    if (target.id === "events") {
      while (target.children.length > 50) { target.removeChild(target.lastElementChild); }
    }
    var pnl = target.querySelector ? target.querySelector("[data-day-pnl]") : null;
    if (pnl) { addPnl(parseInt(pnl.dataset.ts, 10), parseInt(pnl.dataset.dayPnl, 10)); }
  });

  // ---- 3. charts ---------------------------------------------------------------------------
  var IST = 19800;  // the chart's axis is UTC; shift so it reads Indian time
  var price = null, pnl = null, chartToken = null, lastPriceTime = 0, lastPnlTime = 0, markers = [], marked = {};
  var pnlOnTicks = false, pnlChart = null;

  function makeChart(el, height) {
    if (!el || !window.LightweightCharts) { return null; }
    var chart = LightweightCharts.createChart(el, {
      height: height, autoSize: true,
      layout: { background: { color: "transparent" }, textColor: "#8793a3", fontSize: 11 },
      grid: { vertLines: { color: "#222a33" }, horzLines: { color: "#222a33" } },
      rightPriceScale: { borderColor: "#2a323d" },
      timeScale: { borderColor: "#2a323d", timeVisible: true, secondsVisible: true },
    });
    return chart;
  }

  function initCharts() {
    var priceEl = document.getElementById("price-chart"), pnlEl = document.getElementById("pnl-chart");
    if (!priceEl || price) { return; }
    var pc = makeChart(priceEl, 260), qc = makeChart(pnlEl, 110);
    if (!pc) { return; }
    price = pc.addLineSeries({ color: "#4ea1ff", lineWidth: 2 });
    if (qc) {
      pnlChart = qc;
      pnl = qc.addBaselineSeries({ baseValue: { type: "price", price: 0 }, lineWidth: 2,
        topLineColor: "#2ecc71", bottomLineColor: "#ff5c5c",
        topFillColor1: "rgba(46,204,113,.25)", topFillColor2: "rgba(46,204,113,.02)",
        bottomFillColor1: "rgba(255,92,92,.02)", bottomFillColor2: "rgba(255,92,92,.25)" });
    }
    Array.prototype.forEach.call(document.querySelectorAll("[data-day-pnl]"), function (el) {
      addPnl(parseInt(el.dataset.ts, 10), parseInt(el.dataset.dayPnl, 10));
    });
  }

  function chartTitle(text) {
    var el = document.getElementById("chart-symbol");
    if (el) { el.textContent = text; }
  }

  function setChartToken(token, label) {
    if (!price || token === chartToken) { return; }
    chartToken = token;
    lastPriceTime = 0;
    markers = [];
    marked = {};
    price.setData([]);
    price.setMarkers([]);
    chartTitle(label || token);
  }

  function addMarker(m) {
    markers.push(m);
    markers.sort(function (a, b) { return a.time - b.time; });
    if (markers.length > 200) { markers.shift(); }
    price.setMarkers(markers);
  }

  function feedChart(row) {
    if (!price) { return; }
    var d = row.dataset, kind = d.kind;
    if (kind === "tick") {
      if (chartToken === null) { setChartToken(d.token, d.label); }
      if (d.token !== chartToken || !d.ts) { return; }
      var t = parseInt(d.ts, 10) + IST;
      if (t < lastPriceTime) { return; }
      lastPriceTime = t;
      price.update({ time: t, value: parseFloat(d.ltp) });
    } else if ((kind === "signal" || kind === "fill") && lastPriceTime && onChart(d.token)) {
      // Marked at the latest price point: the signal or fill happened on the tick just drawn.
      if (marked[d.key]) { return; }
      marked[d.key] = true;
      var buy = d.side === "BUY";
      addMarker({
        time: lastPriceTime, position: buy ? "belowBar" : "aboveBar",
        color: kind === "fill" ? (buy ? "#2ecc71" : "#ff5c5c") : "#f5b841",
        shape: kind === "fill" ? (buy ? "arrowUp" : "arrowDown") : "circle",
        text: kind === "fill" ? (buy ? "B " : "S ") + (d.qty || "") : "",
      });
    }
  }

  // A signal or fill is marked only on its own instrument's chart (never another symbol's).
  function onChart(token) {
    return token === chartToken;
  }

  // Snapshots carry kta's clock; once ticks are charted the point goes at the latest tick's
  // exchange time instead, so both charts share one time axis (a fast sim runs hours off the wall clock).
  function addPnl(tsNs, paise) {
    if (!pnl || isNaN(tsNs) || isNaN(paise)) { return; }
    if (lastPriceTime && !pnlOnTicks) { pnlOnTicks = true; pnl.setData([]); lastPnlTime = 0; }  // clock switch
    var t = lastPriceTime || (pnlOnTicks ? lastPnlTime : Math.floor(tsNs / 1e9) + IST);
    if (t < lastPnlTime) { t = lastPnlTime; }  // same time: the newer figure replaces the point
    lastPnlTime = t;
    pnl.update({ time: t, value: paise / 100 });
    pnlChart.timeScale().fitContent();  // a few points a minute: show the whole day, not a sliver at the edge
  }

  document.addEventListener("click", function (e) {
    var row = e.target.closest ? e.target.closest("tr[data-kind=tick]") : null;
    if (row) { setChartToken(row.dataset.token, row.dataset.label); }
  });
  document.addEventListener("DOMContentLoaded", initCharts);
})();

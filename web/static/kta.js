// kta dashboard glue: the few things htmx does not do by itself.
// 1. Errors of htmx requests are shown in words (the #flash box).
// 2. SSE rows (ticks, signals, orders) are merged into their table by id; changed cells flash.
// 2b. Every day P&L figure on the page shows the newest one (one definition, several panels).
// 3. The price chart and the P&L curve are fed from the same rows (data-* attributes).
// 4. Preferences and keyboard shortcuts; 5. the top bar's menu on a phone; 6. panels refreshed on live events.
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

  // ---- 2. row merging ----------------------------------------------------------------------
  // Lit for a moment, then cleared: two repaints, where a CSS fade animated every frame.
  function flash(el, cls, ms) {
    el.classList.add(cls);
    setTimeout(function () { el.classList.remove(cls); }, ms);
  }

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
      flash(cell, isNaN(a) || isNaN(b) || b >= a ? "up" : "down", 800);
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
        flash(row, "fresh", 1200);
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
      Array.prototype.forEach.call(t.content.querySelectorAll("li"), addEvent);
      return;
    }
    mergeRows(target, e.detail.data, target.dataset.merge);
  });

  document.addEventListener("htmx:sseMessage", function (e) {
    var target = e.target;
    var pnl = target.querySelector ? target.querySelector("[data-day-pnl]") : null;
    if (pnl) { addPnl(parseInt(pnl.dataset.exchangeTs, 10), parseInt(pnl.dataset.dayPnl, 10)); }
  });

  // ---- 2b. one day P&L -----------------------------------------------------------------------
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

  // ---- 3. charts ---------------------------------------------------------------------------
  var IST = 19800;  // the chart's axis is UTC; shift so it reads Indian time
  var price = null, pnl = null, chartToken = null, lastPriceTime = 0, lastPnlTime = 0, markers = [], marked = {};
  // The charts show the exchange day: at a day change the price line, its marks and the P&L curve start over
  // (a page open all week kept every day's points: the JS heap grew ~2 KB a second at 60x, never levelling).
  var chartDay = null, pnlDay = null;
  function dayOf(t) { return Math.floor(t / 86400); }  // t on the exchange's clock (IST-shifted seconds)
  var pnlChart = null, priceChart = null;

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function makeChart(el, height) {
    if (!el || !window.LightweightCharts) { return null; }
    var line = cssVar("--line") || "#2a323d";
    var chart = LightweightCharts.createChart(el, {
      height: height, autoSize: true,
      layout: { background: { color: "transparent" }, textColor: cssVar("--muted") || "#8793a3", fontSize: 11 },
      grid: { vertLines: { color: line }, horzLines: { color: line } },
      rightPriceScale: { borderColor: line },
      timeScale: { borderColor: line, timeVisible: true, secondsVisible: true },
    });
    return chart;
  }

  function initCharts() {
    var priceEl = document.getElementById("price-chart"), pnlEl = document.getElementById("pnl-chart");
    if (!priceEl || price) { return; }
    var pc = makeChart(priceEl, 260), qc = makeChart(pnlEl, 110);
    if (!pc) { return; }
    priceChart = pc;
    price = pc.addLineSeries({ color: "#4ea1ff", lineWidth: 2 });
    if (qc) {
      pnlChart = qc;
      pnl = qc.addBaselineSeries({ baseValue: { type: "price", price: 0 }, lineWidth: 2,
        topLineColor: "#2ecc71", bottomLineColor: "#ff5c5c",
        topFillColor1: "rgba(46,204,113,.25)", topFillColor2: "rgba(46,204,113,.02)",
        bottomFillColor1: "rgba(255,92,92,.02)", bottomFillColor2: "rgba(255,92,92,.25)" });
    }
    Array.prototype.forEach.call(document.querySelectorAll("[data-day-pnl]"), function (el) {
      addPnl(parseInt(el.dataset.exchangeTs, 10), parseInt(el.dataset.dayPnl, 10));
    });
  }

  function chartTitle(text) {
    var el = document.getElementById("chart-symbol");
    if (el) { el.textContent = text; }
  }

  function setChartToken(token, label) {
    if (!price || token === chartToken) { return; }
    chartToken = token;
    clearPrice();
    chartTitle(label || token);
  }

  function clearPrice() {
    lastPriceTime = 0;
    markers = [];
    marked = {};
    price.setData([]);
    price.setMarkers([]);
  }

  // What the charts hold, for the memory bench and the browser tests: each is bounded by the exchange day.
  window.ktaChartSizes = function () {
    return { price: price ? price.data().length : 0, pnl: pnl ? pnl.data().length : 0,
      markers: markers.length, marked: Object.keys(marked).length };
  };

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
      if (lastPriceTime && dayOf(t) !== chartDay) { clearPrice(); }
      if (!lastPriceTime) { chartDay = dayOf(t); loadHistory(chartToken, t); }
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

  // The day so far (minute closes and the day's fills, /api/chart) behind the ticks heard live: a dashboard
  // loaded mid-session, or an instrument clicked, shows the session, not an empty chart. Asked on the
  // token's first tick, for that tick's exchange day; only what precedes the first live point is drawn.
  function loadHistory(token, firstTime) {
    var day = new Date(firstTime * 1000).toISOString().slice(0, 10);
    fetch("/api/chart/" + encodeURIComponent(token) + "?day=" + day, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (h) {
        if (!h || token !== chartToken) { return; }
        var live = price.data(), first = live.length ? live[0].time : Infinity;
        var past = h.points.map(function (p) { return { time: p[0] + IST, value: p[1] }; })
          .filter(function (p) { return p.time < first; });
        if (!past.length) { return; }
        price.setData(past.concat(live));
        h.fills.forEach(function (f) {
          var t = f[0] + IST, buy = f[1] === "BUY";
          if (t >= first) { return; }  // heard live: marked as it came
          addMarker({ time: t, position: buy ? "belowBar" : "aboveBar", color: buy ? "#2ecc71" : "#ff5c5c",
            shape: buy ? "arrowUp" : "arrowDown", text: (buy ? "B " : "S ") + f[2] });
        });
        priceChart.timeScale().fitContent();
        document.getElementById("price-chart").dataset.history = String(past.length);
      })
      .catch(function () { /* no history (not connected, broker down): the live ticks still draw */ });
  }

  // A signal or fill is marked only on its own instrument's chart (never another symbol's).
  function onChart(token) {
    return token === chartToken;
  }

  // On the exchange's clock, like the price chart: at the latest charted tick's time, else at the time the
  // snapshot carries on the exchange's clock. A snapshot taken before kta heard the exchange (0) is not drawn:
  // the machine's clock is hours off a paper market run fast, and the curve drew at the machine's 23:31.
  function addPnl(exchangeNs, paise) {
    if (!pnl || isNaN(paise)) { return; }
    var t = lastPriceTime || (exchangeNs > 0 ? Math.floor(exchangeNs / 1e9) + IST : 0);
    if (!t) { return; }
    if (pnlDay !== null && dayOf(t) !== pnlDay) { pnl.setData([]); lastPnlTime = 0; }
    pnlDay = dayOf(t);
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
  // the payoff chart (payoff.js) draws alike; ``pnlTimes`` / ``priceTimes``: the curves' times (epoch s, exchange clock)
  window.ktaCharts = { make: makeChart, cssVar: cssVar, pnlTimes: function () {
    return pnl ? pnl.data().map(function (d) { return d.time - IST; }) : [];
  }, priceTimes: function () {
    return price ? price.data().map(function (d) { return d.time - IST; }) : [];
  } };

  // ---- 4. preferences and keyboard shortcuts ------------------------------------------------
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

  // ---- 5. the top bar's menu on a phone (the pages and the account fold into it) --------------
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

  // ---- 6. panels that re-fetch themselves on live events --------------------------------------
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

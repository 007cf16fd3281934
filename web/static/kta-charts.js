// The price chart and the P&L curve, fed from the rows kta-rows.js merges (data-* attributes).
(function () {
  "use strict";
  var kta = window.kta = window.kta || {};

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
  kta.feedChart = feedChart;
  kta.addPnl = addPnl;
})();

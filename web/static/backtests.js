/* The backtests page: the params form from the strategy catalog, runs over /api/backtests, progress from
   the `backtest` events of /api/stream, the result's metrics, equity + drawdown and price + trade charts
   (lightweight-charts, vendored), and two runs side by side. No inline script: the page's CSP allows
   only /static. */
(function () {
  "use strict";
  var catalog = [], shown = [], charts = [];
  var $ = function (sel) { return document.querySelector(sel); };

  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (e) { return ""; }
  }
  function api(method, url, body) {
    var opts = { method: method, headers: { "Accept": "application/json", "X-CSRFToken": csrf() } };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(url, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) { var e = new Error(data.detail || r.statusText); e.data = data; throw e; }
        return data;
      });
    });
  }
  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value == null ? "" : String(value);
    if (cls) { el.className = cls; }
    return el;
  }
  var IST = 19800; // the charts' axis reads in the exchange's time (lightweight-charts shows UTC)
  var MARK = { entry: "", exit: "X", stop_loss: "SL", target: "T", external: "SQ" };
  // -₹62.44 as the dashboard writes it (shared.messages.format_inr: the sign joined to the ₹), not ₹-62.44
  function rupees(p) {
    if (p == null) return "-";
    return (p < 0 ? "-\u2060₹" : "₹") + (Math.abs(p) / 100).toLocaleString("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function pct(x) { return x == null ? "-" : (x * 100).toFixed(2) + "%"; }
  function num(x) { return x == null ? "-" : Number(x).toFixed(2); }

  // ---- the form -------------------------------------------------------------------------------
  // An option strategy trades around one underlying (an index or a stock with options) on intraday bars: the
  // symbols field becomes "Underlying", the day interval is not offered, and a note says how legs are priced.
  function renderKind(spec) {
    var options = !!spec && spec.kind === "options", form = $("#bt-form"), f = form.elements;
    $("#bt-symbols-label").textContent = options ? "Underlying" : "Symbols";
    f.symbols.placeholder = options ? "NIFTY 50" : "INFY,TCS";
    if (options && (f.symbols.dataset.kind || "equity") !== "options") { f.symbols.value = "NIFTY 50"; }
    if (!options && f.symbols.dataset.kind === "options") { f.symbols.value = "INFY"; }
    f.symbols.dataset.kind = options ? "options" : "equity";
    var day = Array.prototype.filter.call(f.interval.options, function (o) { return o.value === "day"; })[0];
    if (day) { day.disabled = options; }
    if (options && f.interval.value === "day") { f.interval.value = "minute"; }
    $("#bt-options-note").hidden = !options;
  }
  function renderParams() {
    var box = $("#bt-params"), name = $("#bt-strategy").value;
    box.querySelectorAll("label, .field-error").forEach(function (el) { el.remove(); });
    var spec = catalog.filter(function (s) { return s.name === name; })[0];
    renderKind(spec);
    (spec ? spec.params : []).forEach(function (p) {
      var label = text("label", p.name + " "), input;
      label.title = p.description || "";
      if (p.type === "choice") {
        input = document.createElement("select");
        p.choices.forEach(function (c) { var o = text("option", c); if (c === p.default) { o.selected = true; } input.appendChild(o); });
      } else {
        input = document.createElement("input");
        input.type = p.type === "bool" ? "checkbox" : (p.type === "str" ? "text" : "number");
        if (p.type === "bool") { input.checked = !!p.default; } else if (p.default != null) { input.value = p.default; }
        if (p.min != null) { input.min = p.min; }
        if (p.max != null) { input.max = p.max; }
        if (p.type === "float") { input.step = "any"; }
      }
      input.name = "param." + p.name;
      input.dataset.kind = p.type;
      label.appendChild(input);
      box.appendChild(label);
      var err = text("div", "", "field-error");
      err.dataset.field = "params." + p.name;
      box.appendChild(err);
    });
  }
  function specFromForm(form) {
    var f = form.elements, params = {};
    form.querySelectorAll("[name^='param.']").forEach(function (el) {
      var v = el.dataset.kind === "bool" ? el.checked : el.value;
      if (el.dataset.kind === "int") { v = parseInt(v, 10); } else if (el.dataset.kind === "float") { v = parseFloat(v); }
      params[el.name.slice(6)] = v;
    });
    return { strategy: f.strategy.value, params: params, interval: f.interval.value,
             symbols: f.symbols.value.split(",").map(function (s) { return s.trim().toUpperCase(); }).filter(Boolean),
             start: f.start.value, end: f.end.value, capital: Math.round(parseFloat(f.capital.value || "0") * 100),
             slippage_ticks: parseInt(f.slippage_ticks.value || "1", 10) };
  }
  function showError(form, e) {
    form.querySelectorAll(".field-error").forEach(function (el) { el.textContent = ""; });
    var data = e.data || {}, field = data.field || (data.extra && data.extra[0] && data.extra[0].key) || "body";
    var slot = form.querySelector('.field-error[data-field="' + field + '"]');
    if (!slot) {
      var input = form.elements[field];
      slot = text("div", "", "field-error");
      if (input && input.parentNode) { input.parentNode.after(slot); } else { slot = form.querySelector('[data-field="body"]'); }
    }
    slot.textContent = (field !== "body" ? field + ": " : "") + (data.detail || e.message);
  }
  function submit(ev) {
    ev.preventDefault();
    var form = ev.target;
    api("POST", "/api/backtests/", specFromForm(form)).then(function (out) {
      form.querySelectorAll(".field-error").forEach(function (el) { el.textContent = ""; });
      progress({ backtest_id: out.backtest_id, state: "queued", done: 0, kind: "backtest" });
      loadRuns();
    }).catch(function (e) { showError(form, e); });
  }

  // ---- progress -------------------------------------------------------------------------------
  function progress(p) {
    var id = "bt-p-" + p.backtest_id, row = document.getElementById(id);
    var known = row && row.dataset.state;
    // The stream's events can overtake the POST's answer: its "queued" must never undo a later state
    // (a short run's "done" arrived first and the row stayed "queued" for good).
    if (known && known !== "queued" && known !== "running") { return; }
    if (known === "running" && p.state === "queued") { return; }
    if (!row) {
      row = text("div", "", "backtest-progress"); row.id = id;
      row.appendChild(text("span", p.kind + " " + p.backtest_id, "bt-id"));
      var bar = document.createElement("progress"); bar.max = 1; row.appendChild(bar);
      row.appendChild(text("span", "", "bt-state"));
      var cancel = text("button", "Cancel"); cancel.type = "button";
      cancel.addEventListener("click", function () { api("POST", "/api/backtests/" + p.backtest_id + "/cancel"); });
      row.appendChild(cancel);
      $("#bt-progress").prepend(row);
    }
    row.dataset.state = p.state;
    row.querySelector("progress").value = p.done || 0;
    row.querySelector(".bt-state").textContent = p.state + " " + ((p.done || 0) * 100).toFixed(1) + "%" +
      (p.bars ? " · " + p.bars.toLocaleString() + " bars" : "") + (p.message ? " · " + p.message : "");
    if (p.state !== "queued" && p.state !== "running") {
      row.querySelector("button").remove();
      loadRuns();
      if (p.state === "done" && p.kind === "backtest") { show([p.backtest_id]); }
    }
  }
  function listen() {
    var es = new EventSource("/api/stream");
    es.addEventListener("backtest", function (ev) { progress(JSON.parse(ev.data)); });
  }

  // ---- runs -----------------------------------------------------------------------------------
  function loadRuns() {
    return api("GET", "/api/backtests/?limit=50").then(function (runs) {
      var body = $("#bt-runs tbody");
      body.textContent = "";
      runs.forEach(function (r) {
        var tr = document.createElement("tr"), pick = document.createElement("input");
        pick.type = "checkbox"; pick.value = r.id; pick.disabled = r.state !== "done" || r.kind !== "backtest";
        pick.checked = shown.indexOf(r.id) >= 0;
        pick.addEventListener("change", picked);
        var td = document.createElement("td"); td.appendChild(pick); tr.appendChild(td);
        var link = text("a", r.id); link.href = "#"; link.addEventListener("click", function (e) { e.preventDefault(); show([r.id]); });
        td = document.createElement("td"); td.appendChild(link); tr.appendChild(td);
        [r.kind === "sweep" ? "sweep of " + r.spec.base.strategy : r.spec.strategy,
         (r.kind === "sweep" ? r.spec.base : r.spec).symbols.join(","),
         (r.kind === "sweep" ? r.spec.base : r.spec).start + " → " + (r.kind === "sweep" ? r.spec.base : r.spec).end,
         r.state].forEach(function (v) { tr.appendChild(text("td", v)); });
        tr.appendChild(text("td", rupees(r.metrics.net_pnl), "num"));
        tr.appendChild(text("td", num(r.metrics.sharpe), "num"));
        tr.appendChild(text("td", r.metrics.trades == null ? "-" : r.metrics.trades, "num"));
        tr.dataset.run = r.id;
        body.appendChild(tr);
      });
    });
  }
  function picked() {
    var ids = Array.prototype.map.call(document.querySelectorAll("#bt-runs input:checked"), function (el) { return el.value; });
    if (ids.length) { show(ids.slice(-2)); }
  }

  // ---- one or two results ---------------------------------------------------------------------
  var ROWS = [["net P&L", "net_pnl", rupees], ["gross P&L", "gross_pnl", rupees], ["charges", "charges", rupees],
    ["total return", "total_return", pct], ["annual return", "annual_return", pct], ["Sharpe", "sharpe", num],
    ["Sortino", "sortino", num], ["Calmar", "calmar", num], ["max drawdown", "max_drawdown", rupees],
    ["max drawdown %", "max_drawdown_pct", pct], ["max drawdown days", "max_drawdown_days", num],
    ["trades", "trades", String], ["win rate", "win_rate", pct], ["profit factor", "profit_factor", num],
    ["expectancy", "expectancy", rupees], ["exposure", "exposure", pct], ["turnover ×", "turnover", num],
    ["bars", "bars", String], ["refused signals", "refused", String], ["structures", "groups", String],
    ["rolled back", "groups_rolled_back", String], ["needing attention", "groups_needing_attention", String]];

  function show(ids) {
    shown = ids;
    Promise.all(ids.map(function (id) { return api("GET", "/api/backtests/" + id + "?chart=true"); })).then(render);
  }
  // "ema_crossover on INFY, TCS · 2026-11-01 → 2026-12-01 · fast=5, slow=20, reverse=on (run 4a89…)":
  // the params as the dashboard's strategy list writes them (gateway.templating.params_text), not JSON
  function paramsText(params) {
    var keys = Object.keys(params || {});
    if (!keys.length) return "default parameters";
    return keys.map(function (k) {
      var v = params[k];
      return k + "=" + (v === true ? "on" : v === false ? "off" : v);
    }).join(", ");
  }
  function runTitle(r) {
    var spec = r.kind === "sweep" ? r.spec.base : r.spec;
    return spec.strategy + " on " + (spec.symbols || []).join(", ") + " · " + spec.start + " → " + spec.end +
      " · " + paramsText(spec.params) + " (run " + r.id + ")";
  }
  function render(runs) {
    $("#bt-result").hidden = false;
    $("#bt-title").textContent = runs.map(runTitle).join("  vs  ");
    var table = document.createElement("table"), head = document.createElement("tr");
    table.className = "table metrics"; table.id = "bt-metrics-table";
    head.appendChild(text("th", ""));
    runs.forEach(function (r) { head.appendChild(text("th", r.id, "num")); });
    table.appendChild(head);
    ROWS.forEach(function (row) {
      // a structure's rows only where a run placed groups
      if (row[1].indexOf("groups") === 0 && !runs.some(function (r) { return r.metrics[row[1]] != null; })) { return; }
      var tr = document.createElement("tr");
      tr.appendChild(text("td", row[0]));
      runs.forEach(function (r) {
        var v = r.metrics[row[1]];
        tr.appendChild(text("td", v == null && row[2] === String ? "-" : row[2](v), "num"));
      });
      table.appendChild(tr);
    });
    $("#bt-metrics").textContent = ""; $("#bt-metrics").appendChild(table);
    charts.forEach(function (c) { c.remove(); }); charts = [];
    equityChart(runs);
    var select = $("#bt-symbol"); select.textContent = "";
    Object.keys(runs[0].chart || {}).forEach(function (s) { select.appendChild(text("option", s)); });
    select.onchange = function () { priceChart(runs[0], select.value); };
    if (select.value) { priceChart(runs[0], select.value); }
    symbolsTable(runs[0]);
    structuresTable(runs[0]);
    var base = "/api/backtests/" + runs[0].id + "/export?";
    $("#bt-export-trades").href = base + "what=trades&format=csv";
    $("#bt-export-orders").href = base + "what=orders&format=csv";
    $("#bt-export-equity").href = base + "what=curve&format=csv";
    $("#bt-export-json").href = base + "what=metrics&format=json";
    $("#bt-export-structures").href = base + "what=structures&format=csv";
  }
  function equityChart(runs) {
    var el = $("#bt-equity"); el.textContent = "";
    var chart = LightweightCharts.createChart(el, { height: el.clientHeight, width: el.clientWidth, timeScale: { timeVisible: true } });
    charts.push(chart);
    var colours = ["#2962ff", "#ff6d00"];
    runs.forEach(function (r, i) {
      var eq = chart.addLineSeries({ color: colours[i], lineWidth: 2, title: r.id });
      var dd = chart.addHistogramSeries({ color: i ? "rgba(255,109,0,0.35)" : "rgba(239,83,80,0.45)", priceScaleId: "dd" + i, title: "drawdown " + r.id });
      eq.setData(dedupe(r.results.curve.map(function (p) { return { time: p[0] + IST, value: p[1] / 100 }; })));
      dd.setData(dedupe(r.results.curve.map(function (p) { return { time: p[0] + IST, value: -p[2] / 100 }; })));
      chart.priceScale("dd" + i).applyOptions({ scaleMargins: { top: 0.75, bottom: 0 } });
    });
    chart.timeScale().fitContent();
  }
  function dedupe(points) {
    var out = [];
    points.forEach(function (p) { if (!out.length || p.time > out[out.length - 1].time) { out.push(p); } });
    return out;
  }
  function priceChart(run, symbol) {
    var el = $("#bt-price"); el.textContent = "";
    var chart = LightweightCharts.createChart(el, { height: el.clientHeight, width: el.clientWidth, timeScale: { timeVisible: true } });
    charts.push(chart);
    var series = chart.addCandlestickSeries();
    series.setData(dedupe(run.chart[symbol].map(function (b) { return { time: b[0] + IST, open: b[1], high: b[2], low: b[3], close: b[4] }; })));
    var bars = run.chart[symbol].map(function (b) { return b[0]; });
    var at = function (ts) {
      var t = bars[0];
      for (var i = 0; i < bars.length && bars[i] <= ts; i++) { t = bars[i]; }
      return t + IST;
    };
    var markers = run.results.fills.filter(function (f) { return f.symbol === symbol; }).map(function (f) {
      return { time: at(f.ts), position: f.side === "BUY" ? "belowBar" : "aboveBar", color: f.side === "BUY" ? "#26a69a" : "#ef5350",
               shape: f.side === "BUY" ? "arrowUp" : "arrowDown", text: MARK[f.kind] || "" };
    });
    // an option strategy's fills are on its contracts: on the underlying's chart, where each structure opened and closed
    (run.results.structures || []).forEach(function (s) {
      markers.push({ time: at(s.opened_ts), position: "belowBar", color: "#7e57c2", shape: "circle", text: s.structure });
      if (s.closed_ts) { markers.push({ time: at(s.closed_ts), position: "aboveBar", color: "#7e57c2", shape: "square", text: "close" }); }
    });
    markers.sort(function (a, b) { return a.time - b.time; });
    series.setMarkers(dedupe(markers));
    chart.timeScale().fitContent();
  }
  function symbolsTable(run) {
    var t = document.createElement("table"); t.className = "table";
    var head = document.createElement("tr");
    ["symbol", "net P&L", "gross P&L", "charges", "trades", "win rate", "profit factor"].forEach(function (h) { head.appendChild(text("th", h)); });
    t.appendChild(head);
    Object.keys(run.per_symbol).forEach(function (s) {
      var m = run.per_symbol[s], tr = document.createElement("tr");
      [s, rupees(m.net_pnl), rupees(m.gross_pnl), rupees(m.charges), m.trades, pct(m.win_rate), num(m.profit_factor)].forEach(function (v) { tr.appendChild(text("td", v)); });
      t.appendChild(tr);
    });
    $("#bt-symbols").textContent = ""; $("#bt-symbols").appendChild(t);
  }

  // each option structure: when it opened and closed, its legs, P&L from its own fills, how it ended
  function structuresTable(run) {
    var rows = (run.results && run.results.structures) || [];
    $("#bt-structures-box").hidden = !rows.length;
    var t = document.createElement("table"), head = document.createElement("tr");
    t.className = "table"; t.id = "bt-structures-table";
    ["opened", "closed", "structure", "legs (entry → exit)", "gross P&L", "charges", "net P&L", "ended"].forEach(function (h) { head.appendChild(text("th", h)); });
    t.appendChild(head);
    rows.forEach(function (s) {
      var tr = document.createElement("tr");
      var legs = s.legs.map(function (l) {
        return l.side + " " + l.quantity + " " + l.symbol.split(":").pop() + " " + rupees(l.entry_price) +
          " → " + (l.exit_price == null ? "held" : rupees(l.exit_price));
      }).join("\n");
      [s.opened, s.closed || "-", s.structure].forEach(function (v) { tr.appendChild(text("td", v)); });
      tr.appendChild(text("td", legs, "legs"));
      [s.gross_pnl, s.charges, s.net_pnl].forEach(function (v) { tr.appendChild(text("td", rupees(v), "num")); });
      tr.appendChild(text("td", s.ended));
      t.appendChild(tr);
    });
    $("#bt-structures").textContent = ""; $("#bt-structures").appendChild(t);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var today = new Date(), from = new Date(today.getTime() - 30 * 86400000);
    var form = $("#bt-form");
    form.elements.end.value = today.toISOString().slice(0, 10);
    form.elements.start.value = from.toISOString().slice(0, 10);
    api("GET", "/api/strategies/catalog").then(function (c) {
      catalog = c;
      ["equity", "options"].forEach(function (kind) {
        var group = document.createElement("optgroup");
        group.label = kind === "equity" ? "Equity" : "Options";
        catalog.filter(function (s) { return s.kind === kind; }).forEach(function (s) { group.appendChild(text("option", s.name)); });
        if (group.children.length) { $("#bt-strategy").appendChild(group); }
      });
      renderParams();
    });
    $("#bt-strategy").addEventListener("change", renderParams);
    form.addEventListener("submit", submit);
    loadRuns();
    listen();
  });
}());

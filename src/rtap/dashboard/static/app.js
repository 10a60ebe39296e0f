// rtap dashboard page. Reads the definition from /api/dashboards, then polls the panels of the shown
// dashboard, each at its own refresh interval, in one request for all the panels due (/api/panels?ids=...):
// a viewer costs the machine its requests more than its queries, whose results viewers share. A poll is
// scheduled only after the previous one finished, so a slow warehouse slows the page down instead of piling
// up requests.
"use strict";

const PALETTE = ["#4cc2ff", "#f78166", "#3fb950", "#d2a8ff", "#e3b341", "#56d4dd", "#ff7b72", "#a5d6ff",
                 "#7ee787", "#ffa657"];
const PLOT_LAYOUT = {
  paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
  font: { color: "#b7c1cd", size: 11, family: "Inter, Segoe UI, system-ui, sans-serif" },
  margin: { l: 48, r: 12, t: 6, b: 28 },
  xaxis: { gridcolor: "#222a35", zerolinecolor: "#2b3441", linecolor: "#2b3441", automargin: true },
  yaxis: { gridcolor: "#222a35", zerolinecolor: "#2b3441", linecolor: "#2b3441", rangemode: "tozero", automargin: true },
  legend: { orientation: "h", y: 1.02, yanchor: "bottom", x: 0, font: { size: 10 } },
  hovermode: "x unified", colorway: PALETTE,
};
const PLOT_CONFIG = { displayModeBar: false, responsive: true };
// Tick labels by zoom: seconds for short ranges, minutes within a day, dates beyond (no second date line).
const TIME_TICKS = [
  { dtickrange: [null, 59000], value: "%H:%M:%S" },
  { dtickrange: [59000, 86400000], value: "%H:%M" },
  { dtickrange: [86400000, null], value: "%b %d" },
];

const state = { definition: null, dashboard: null, range: "1h", timers: [], generation: 0, dueAt: {} };
// A panel due within this long of a poll is asked in it: panels of 2 s and 5 s share requests.
const POLL_SLACK_MS = 1000;

const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
};
const pad = (n) => String(n).padStart(2, "0");
const localTime = (date) => `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
// Plotly ignores time zones in date strings, so instants become local wall-clock strings here.
const localStamp = (moment) => {  // an ISO 8601 text or epoch milliseconds
  const d = new Date(moment);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${localTime(d)}`;
};
const isTime = (type) => type.startsWith("timestamp") || type.startsWith("date");
const isNumeric = (type) => /^(u?int|int|uint|float|double|decimal|halffloat)/.test(type);
const label = (name) => name.replace(/_/g, " ");

// --- numbers: in full with digit grouping (16,727 rather than plotly's 16.727k), units from the panel's formats --
const grouped = (v, digits) => v.toLocaleString(undefined, { maximumFractionDigits: digits });
const fixed = (v, digits) => v.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
const plainNumber = (v) => {
  const abs = Math.abs(v);
  if (abs >= 1e12) return grouped(v / 1e9, 0) + " B";  // beyond a 12-digit figure, nobody reads the digits
  return grouped(v, Number.isInteger(v) ? 0 : abs < 10 ? 2 : 1);
};
const money = () => new Intl.NumberFormat(undefined, {
  style: "currency", currency: state.definition.currency, minimumFractionDigits: 2, maximumFractionDigits: 2,
});
const FORMATS = {
  currency: (v) => money().format(v),
  percent: (v) => `${fixed(v, 1)} %`,
  seconds: (v) => `${fixed(v, 1)} s`,
  milliseconds: (v) => `${grouped(v, 0)} ms`,
  per_second: (v) => `${plainNumber(v)} /s`,
};
const formatValue = (v, format) => {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  return (FORMATS[format] || plainNumber)(v);
};
// The same units on plotly's axes and hover labels (d3-format: ",.2~f" is 1,234.5).
const currencySymbol = () => money().formatToParts(0).find((part) => part.type === "currency").value;
function axisFormat(format) {
  switch (format) {
    case "currency": return { tickprefix: currencySymbol(), tickformat: ",.0f", hoverformat: ",.2f" };
    case "seconds": return { ticksuffix: " s", tickformat: ",~r", hoverformat: ",.2~f" };
    case "milliseconds": return { ticksuffix: " ms", tickformat: ",~r", hoverformat: ",.0f" };
    case "per_second": return { ticksuffix: " /s", tickformat: ",~r", hoverformat: ",.1~f" };
    case "percent": return { ticksuffix: " %", tickformat: ",~r", hoverformat: ",.1~f" };
    default: return { tickformat: ",~r", hoverformat: ",.2~f" };
  }
}
// The format of a chart's value axis: the one its value columns share, if they do.
function sharedFormat(panel, columns) {
  const formats = new Set(columns.map((name) => panel.formats[name]));
  return formats.size === 1 ? [...formats][0] : undefined;
}

async function fetchJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  // The session ended (expired, or the dashboard restarted): back to the login form.
  if (response.status === 401) window.location.assign("/login");
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail ? String(body.detail) : `HTTP ${response.status}`);
    // 429 (too many requests) and 503 (busy) say when to ask again; the next poll waits at least that long.
    error.retryAfterSeconds = Number(response.headers.get("Retry-After")) || 0;
    throw error;
  }
  return body;
}

function rangeQuery() {
  const to = new Date();
  const from = new Date(to.getTime() - state.definition.ranges[state.range] * 60000);
  return `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
}

// --- renderers: one per chart type, each takes the panel's body element and the API result ----------

function renderNumber(body, result, panel) {
  const row = result.rows[0];
  let box = body.querySelector(".numbers");
  if (!box) { box = el("div", "numbers"); body.replaceChildren(box); }
  box.replaceChildren(...result.columns.map((name, i) => {
    const item = el("div", "number");
    const text = formatValue(row[i], panel.formats[name]);
    const caption = label(name);
    item.dataset.column = name;
    // Its share of the tile and the length its font fits (style.css): a label's letter is ~0.4 of a value's.
    item.style.setProperty("--chars", String(Math.max(text.length, 3)));
    item.style.setProperty("--share", String(Math.max(text.length, Math.ceil(caption.length * 0.4), 3)));
    item.append(el("div", "value", text), el("div", "label", caption));
    return item;
  }));
}

function renderTable(body, result, panel) {
  const table = el("table");
  const head = el("tr");
  result.columns.forEach((name) => head.append(el("th", "", label(name))));
  const thead = el("thead");
  thead.append(head);
  table.append(thead);
  const tbody = el("tbody");
  for (const row of result.rows) {
    const tr = el("tr");
    row.forEach((value, i) => {
      const type = result.types[i];
      const format = panel.formats[result.columns[i]];
      const text = value === null ? "–" : isTime(type) ? localStamp(value) : isNumeric(type) ? formatValue(value, format) : String(value);
      const td = el("td", isNumeric(type) ? "num" : "", text);
      td.title = value === null ? "" : String(value);
      tr.append(td);
    });
    tbody.append(tr);
  }
  table.append(tbody);
  const wrap = el("div", "table-wrap");
  wrap.append(table);
  body.replaceChildren(wrap);
}

// One {name, x, y} per line: (time, value...) has a line per value column, (time, series, value) one per series.
function timeseriesLines(result) {
  const [, ...rest] = result.columns;
  if (rest.length === 2 && !isNumeric(result.types[1])) {
    const series = new Map();
    for (const [t, name, value] of result.rows) {
      if (!series.has(name)) series.set(name, { name: String(name), x: [], y: [] });
      series.get(name).x.push(t);
      series.get(name).y.push(value);
    }
    return { lines: [...series.values()], values: [rest[1]] };
  }
  const x = result.rows.map((r) => r[0]);
  return { lines: rest.map((name, i) => ({ name: label(name), x, y: result.rows.map((r) => r[i + 1]) })), values: rest };
}

// Whether the bucket starting at ``iso`` was still filling when the query ran (the range ends in it).
const isOpen = (iso, panel, result) =>
  panel.bucket_seconds && Date.parse(iso) + panel.bucket_seconds * 1000 > Date.parse(result.range_to);

// A solid line over the closed buckets, and the newest, still-filling bucket as a dotted segment ending in an
// open circle: a partial count is drawn as provisional, not as a sudden drop.
function timeseriesTraces(lines, result, panel) {
  const traces = [];
  let open = false;
  lines.forEach((line, i) => {
    const color = PALETTE[i % PALETTE.length];
    const x = line.x.map(localStamp);
    const last = line.x.length - 1;
    const filling = last >= 0 && isOpen(line.x[last], panel, result);
    open = open || filling;
    const closedEnd = filling ? last : last + 1;
    if (closedEnd > 0) {  // a series whose only bucket is the open one has no solid part
      // One closed bucket is a point, not a line: give it a marker or it is not drawn at all.
      traces.push({ type: "scatter", mode: closedEnd === 1 ? "lines+markers" : "lines", name: line.name,
                    marker: { size: 6, color }, x: x.slice(0, closedEnd),
                    y: line.y.slice(0, closedEnd), line: { width: 2, color }, fill: lines.length === 1 ? "tozeroy" : "none",
                    fillcolor: "rgba(76,194,255,0.12)", legendgroup: line.name, meta: { bucket: "closed" } });
    }
    if (filling) {
      const from = Math.max(0, last - 1);
      const points = last - from + 1;
      traces.push({ type: "scatter", mode: "lines+markers", name: line.name, x: x.slice(from), y: line.y.slice(from),
                    line: { width: 2, color, dash: "dot" }, legendgroup: line.name, showlegend: closedEnd === 0,
                    meta: { bucket: "open" }, hoverinfo: ["skip", "all"].slice(-points),
                    hovertemplate: "%{y} (still filling)",
                    marker: { size: [0, 7].slice(-points), color: "rgba(0,0,0,0)", line: { color, width: 2 } } });
    }
  });
  return { traces, open };
}

function plot(body, traces, layout) {
  let chart = body.querySelector(".chart");
  if (!chart) { chart = el("div", "chart"); body.replaceChildren(chart); }
  Plotly.react(chart, traces, { ...PLOT_LAYOUT, ...layout }, PLOT_CONFIG);
}

// A chart whose series all have one bucket: plotly would span a second around it and label its ticks with the same
// second over and over; a bucket either side gives it a readable axis.
function singleBucketRange(result, panel) {
  const stamps = new Set(result.rows.map((row) => Date.parse(row[0])));  // every series' x is the first column
  if (stamps.size !== 1) return {};
  const [at] = stamps;
  const bucket = (panel.bucket_seconds || 60) * 1000;
  return { range: [localStamp(at - bucket), localStamp(at + bucket)] };
}

function renderTimeseries(body, result, panel) {
  const { lines, values } = timeseriesLines(result);
  const { traces, open } = timeseriesTraces(lines, result, panel);
  plot(body, traces, {
    xaxis: { ...PLOT_LAYOUT.xaxis, type: "date", hoverformat: "%Y-%m-%d %H:%M:%S", tickformatstops: TIME_TICKS,
             ...singleBucketRange(result, panel) },
    yaxis: { ...PLOT_LAYOUT.yaxis, ...axisFormat(sharedFormat(panel, values)) },
  });
  return open ? `newest ${panel.bucket_seconds % 60 ? `${panel.bucket_seconds} s` : "minute"} still filling (dotted)` : "";
}

function renderBar(body, result, panel) {
  const rows = [...result.rows].reverse();  // largest on top in a horizontal bar chart
  const [, valueColumn] = result.columns;
  const format = panel.formats[valueColumn];
  const text = rows.map((r) => formatValue(r[1], format));
  plot(body, [{
    type: "bar", orientation: "h", x: rows.map((r) => r[1]), y: rows.map((r) => String(r[0])),
    text, textposition: "outside", cliponaxis: false, marker: { color: PALETTE[0] }, name: label(valueColumn),
    hovertemplate: "%{y}<br>" + label(valueColumn) + ": %{text}<extra></extra>",
  }], { margin: { ...PLOT_LAYOUT.margin, l: 12 }, hovermode: "closest", showlegend: false,
        // Room right of the longest bar for its label.
        xaxis: { ...PLOT_LAYOUT.xaxis, type: "linear", range: [0, 1.2 * Math.max(0, ...rows.map((r) => r[1]))],
                 ...axisFormat(format) },
        yaxis: { gridcolor: "rgba(0,0,0,0)", linecolor: "#2b3441", type: "category", automargin: true } });
}

function renderFunnel(body, result) {
  const values = result.rows.map((r) => r[1]);
  const first = values[0] || 0;
  // Labels made here rather than by plotly's textinfo, whose SI format printed 16727 as "16.727k".
  const text = values.map((v, i) => i === 0 || !first ? plainNumber(v) : `${plainNumber(v)} · ${fixed(100 * v / first, 1)} %`);
  plot(body, [{
    type: "funnel", y: result.rows.map((r) => String(r[0])), x: values, text, textinfo: "text",
    hovertemplate: "%{y}: %{text}<extra></extra>", marker: { color: PALETTE.slice(0, result.rows.length) },
    connector: { line: { color: "#2b3441" } },
  }], { margin: { ...PLOT_LAYOUT.margin, l: 12 }, hovermode: "closest", showlegend: false,
        xaxis: { visible: false }, yaxis: { type: "category", automargin: true } });
}

const RENDERERS = { number: renderNumber, table: renderTable, timeseries: renderTimeseries, bar: renderBar,
                    funnel: renderFunnel };

// Empty means nothing to draw: no rows, or a one-row aggregate over no data (all nulls or zero count).
function isEmpty(result) {
  if (result.rows.length === 0) return true;
  return result.chart === "funnel" && result.rows.every((r) => !r[1]);
}

// --- panels -------------------------------------------------------------------------------------

function buildPanel(panel) {
  const node = el("section", "panel");
  node.id = `panel-${panel.id}`;
  node.dataset.panel = panel.id;
  node.dataset.chart = panel.chart;
  node.dataset.state = "loading";
  node.style.gridColumn = `span ${panel.width}`;
  node.style.gridRow = `span ${panel.height}`;
  const head = el("div", "panel-head");
  head.append(el("span", "panel-dot"), el("h2", "panel-title", panel.title), el("span", "panel-updated", ""));
  head.title = `refreshes every ${panel.refresh_seconds} s`;
  const body = el("div", "panel-body");
  body.append(el("div", "chart"));
  node.append(head, body, el("div", "message", "loading…"));
  return node;
}

function showAnswer(panel, node, result) {
  const body = node.querySelector(".panel-body");
  const message = node.querySelector(".message");
  const empty = isEmpty(result);
  const note = empty ? "" : RENDERERS[panel.chart](body, result, panel) || "";
  node.dataset.state = empty ? "empty" : "ok";
  node.dataset.rows = String(result.row_count);
  node.dataset.filling = String(Boolean(note));
  message.textContent = empty ? result.empty_note || "No data in this time range yet" : "";
  const updated = new Date(result.updated_at);
  node.dataset.updated = result.updated_at;
  node.querySelector(".panel-updated").textContent =
    `updated ${localTime(updated)}${note ? ` · ${note}` : ""}${result.truncated ? " · truncated" : ""}`;
}

function showError(node, text) {
  // Keep the last good chart visible under the error line: a blip should not blank a wall screen.
  node.dataset.state = "error";
  node.querySelector(".message").textContent = `⚠ ${text}`;
}

async function pollPanels(generation) {
  if (generation !== state.generation) return;
  const now = Date.now();
  const due = state.dashboard.panels.filter((panel) => state.dueAt[panel.id] <= now + POLL_SLACK_MS);
  let answers = {};
  let failure = null;
  try {
    const ids = due.map((panel) => panel.id).join(",");
    if (ids) answers = (await fetchJson(`/api/panels?ids=${encodeURIComponent(ids)}&${rangeQuery()}`)).panels;
  } catch (error) {
    failure = error;
  }
  if (generation !== state.generation) return;
  for (const panel of due) {
    const node = document.getElementById(`panel-${panel.id}`);
    const answer = failure ? null : answers[panel.id];
    let waitSeconds = panel.refresh_seconds;
    if (answer && !answer.error) {
      showAnswer(panel, node, answer);
    } else {
      const refusal = answer ? answer.error
        : failure ? { detail: failure.message, retry_after_s: failure.retryAfterSeconds } : { detail: "no answer" };
      showError(node, refusal.detail);
      // 429 (too many requests) and 503 (busy) say when to ask again; the next poll waits at least that long.
      waitSeconds = Math.max(waitSeconds, refusal.retry_after_s || 0);
    }
    state.dueAt[panel.id] = Date.now() + waitSeconds * 1000;
  }
  const next = Math.min(...Object.values(state.dueAt)) - POLL_SLACK_MS - Date.now();
  state.timers.push(setTimeout(() => pollPanels(generation), Math.max(250, next)));
}

function show(dashboardId) {
  const dashboard = state.definition.dashboards.find((d) => d.id === dashboardId) || state.definition.dashboards[0];
  state.dashboard = dashboard;
  state.generation += 1;
  state.timers.forEach(clearTimeout);
  state.timers = [];
  document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.id === dashboard.id));
  document.querySelectorAll("#ranges button").forEach((b) => b.classList.toggle("active", b.dataset.range === state.range));
  document.getElementById("description").textContent = dashboard.description;
  document.title = `${dashboard.title} · rtap`;
  const grid = document.getElementById("grid");
  grid.dataset.dashboard = dashboard.id;
  grid.replaceChildren();
  state.dueAt = {};
  for (const panel of dashboard.panels) {
    grid.append(buildPanel(panel));
    state.dueAt[panel.id] = 0;
  }
  pollPanels(state.generation);
}

async function pollHealth() {
  const status = document.getElementById("status");
  try {
    const health = await fetchJson("/api/health");
    status.textContent = `live · ${health.database}`;
    status.className = "status ok";
  } catch (error) {
    status.textContent = "warehouse unreachable";
    status.className = "status bad";
  }
  setTimeout(pollHealth, 5000);
}

function tick() {
  document.getElementById("clock").textContent = localTime(new Date());
}

async function main() {
  state.definition = await fetchJson("/api/dashboards");
  const params = new URLSearchParams(location.search);
  if (params.get("range") in state.definition.ranges) state.range = params.get("range");
  const tabs = document.getElementById("tabs");
  for (const dashboard of state.definition.dashboards) {
    const a = el("a", "", dashboard.title);
    a.href = `#${dashboard.id}`;
    a.dataset.id = dashboard.id;
    tabs.append(a);
  }
  const ranges = document.getElementById("ranges");
  for (const key of Object.keys(state.definition.ranges)) {
    const button = el("button", "", key);
    button.dataset.range = key;
    button.addEventListener("click", () => { state.range = key; show(state.dashboard.id); });
    ranges.append(button);
  }
  if (state.definition.collector_port) {  // the collector serves the demo shop, on this page's host
    const shop = document.getElementById("shop");
    shop.href = `${location.protocol}//${location.hostname}:${state.definition.collector_port}/shop/`;
    shop.hidden = false;
  }
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  show(location.hash.slice(1));
  pollHealth();
  tick();
  setInterval(tick, 1000);
}

main().catch((error) => {
  document.getElementById("grid").replaceChildren(el("p", "description", `Cannot load dashboards: ${error.message}`));
});

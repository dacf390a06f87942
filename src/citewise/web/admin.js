// citewise operator console: plain JavaScript over the documented /v1/admin/... endpoints.
// Everything shown comes from the API and is set as textContent (never as HTML); charts
// are drawn by uPlot (vendored, /static/vendor/uplot-*), each with a visually hidden table
// of its numbers. Dates are shown in the browser's locale.
"use strict";

const KEY_STORAGE = "citewise.key"; // the chat page's: one sign-in per tab
const VIEWS = ["usage", "keys", "models", "collections", "jobs", "quality", "budgets", "health"];
const CALLS_SHOWN = 200;
// Colour-blind-safe (Okabe–Ito), then greys for the rest.
const COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
  "#000000", "#777777", "#AAAAAA"];

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  view: "usage",
  calls: [],
  series: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// A table under `parent` in a box that scrolls sideways, by keyboard too (a labelled
// region): its head row of [name, className] columns. Returns its body, empty.
function scrollTable(parent, label, className, columns) {
  const box = el("div", undefined, "scroll");
  box.tabIndex = 0;
  box.setAttribute("role", "region");
  box.setAttribute("aria-label", label);
  const table = el("table", undefined, className);
  const head = el("tr");
  for (const [name, headClass] of columns) {
    const th = el("th", name, headClass);
    th.scope = "col";
    head.append(th);
  }
  table.append(el("thead"));
  table.tHead.append(head);
  const rows = el("tbody");
  table.append(rows);
  box.append(table);
  parent.append(box);
  return rows;
}

// A table row with `data` as its data attributes, headed by a th (a row header) of `text`:
// the row and the th.
function headedRow(data, text, className) {
  const tr = el("tr");
  Object.assign(tr.dataset, data);
  const th = el("th", text, className);
  th.scope = "row";
  tr.append(th);
  return [tr, th];
}

// -- API ------------------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
  if (options.json !== undefined) {
    headers.set("Content-Type", "application/json");
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let code = "";
    try {
      const body = await response.json();
      message = body.error.message || message;
      code = body.error.code || "";
    } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    error.code = code;
    throw error;
  }
  return response.json();
}

// -- formatting (the browser's locale) ------------------------------------------------

const numberFormat = new Intl.NumberFormat(undefined);
const usdFormat = new Intl.NumberFormat(undefined, {
  style: "currency", currency: "USD", minimumFractionDigits: 6, maximumFractionDigits: 6,
});
const shortUsd = new Intl.NumberFormat(undefined, {
  style: "currency", currency: "USD", maximumSignificantDigits: 3,
});
const compactCount = new Intl.NumberFormat(undefined, { notation: "compact" });

function usd(value) {
  return value === null || value === undefined ? "–" : usdFormat.format(value);
}
function count(value) {
  return value === null || value === undefined ? "–" : numberFormat.format(value);
}
function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
function shortWhen(iso) {
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}
function bucketLabel(iso, bucket) {
  const date = new Date(iso);
  return bucket === "hour"
    ? date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "numeric" })
    : date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}
function seconds(value) {
  return value === null || value === undefined ? "–" : value.toFixed(2);
}
function metricValue(metric, value) {
  return metric === "cost_usd" ? usd(value) : count(value);
}

// -- sign in ----------------------------------------------------------------------------

async function start() {
  if (!state.key) {
    // Without auth (loopback) the API answers without a key: try before asking for one.
    try {
      await api("/v1/admin/health");
      showConsole("no authentication (loopback)");
    } catch (error) {
      showSignIn(error.status === 401 ? "" : error.message);
    }
    return;
  }
  try {
    await api("/v1/admin/health");
    const keys = await api("/v1/collections");
    showConsole(`signed in as ${keys.key}`);
  } catch (error) {
    if (error.status === 401) {
      showSignIn("That key was not accepted.");
    } else if (error.status === 403) {
      showForbidden(error.message);
    } else {
      showSignIn(error.message);
    }
  }
}

function hideAll() {
  for (const id of ["sign-in", "forbidden", "main", "views-nav"]) $(id).hidden = true;
}

function showSignIn(message) {
  hideAll();
  $("sign-in").hidden = false;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("sign-in-error").textContent = message || "";
  $("api-key").focus();
}

function showForbidden(message) {
  hideAll();
  $("forbidden").hidden = false;
  $("sign-out").hidden = false;
  $("forbidden-text").textContent =
    `${message}: the console shows keys, usage and budgets to operators only.`;
  $("forbidden-sign-out").focus();
}

function showConsole(who) {
  hideAll();
  $("main").hidden = false;
  $("views-nav").hidden = false;
  $("sign-out").hidden = !state.key;
  $("who").textContent = who;
  route();
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = "";
  showSignIn("");
}

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("api-key").value.trim();
  sessionStorage.setItem(KEY_STORAGE, state.key);
  $("api-key").value = "";
  start();
});
$("sign-out").addEventListener("click", signOut);
$("forbidden-sign-out").addEventListener("click", signOut);

// -- views --------------------------------------------------------------------------------

function route() {
  const wanted = location.hash.replace("#", "");
  state.view = VIEWS.includes(wanted) ? wanted : "usage";
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== state.view;
  for (const link of document.querySelectorAll("#views-nav a")) {
    if (link.dataset.view === state.view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  $("status").textContent = "";
  const load = {
    usage: loadUsage, keys: loadKeys, models: loadModels, quality: loadQuality,
    budgets: loadBudgets, health: loadHealth, collections: loadCollections, jobs: loadJobs,
  };
  load[state.view]().catch(failed);
}

function failed(error) {
  if (error.status === 401) showSignIn("That key is no longer accepted.");
  else if (error.status === 403) showForbidden(error.message);
  else $("status").textContent = error.message;
}

window.addEventListener("hashchange", () => {
  if (!$("main").hidden) {
    route();
    $("main").focus();
  }
});

// -- usage & cost -------------------------------------------------------------------------

function rangeSince(range) {
  const now = Date.now();
  const hours = { "24h": 24, "7d": 24 * 7, "30d": 24 * 30 }[range];
  if (!hours) return null;
  const since = new Date(now - hours * 3600 * 1000);
  if (range !== "24h") since.setUTCHours(0, 0, 0, 0); // whole UTC days, as the ledger's
  else since.setUTCMinutes(0, 0, 0);
  return since.toISOString();
}

async function loadUsage() {
  const range = $("usage-range").value;
  const by = $("usage-by").value;
  const bucket = range === "24h" ? "hour" : "day";
  const since = rangeSince(range);
  const query = new URLSearchParams({ bucket, by });
  if (since) query.set("since", since);
  const series = await api(`/v1/admin/usage/series?${query}`);
  const callQuery = new URLSearchParams({ calls: "true" });
  if (since) callQuery.set("since", since);
  const calls = await api(`/v1/usage?${callQuery}`);
  $("usage-range-note").textContent = since
    ? `Calls since ${when(since)} (the same figures as citewise usage --by ${by} --since ${since}).`
    : `Every call in the ledger (the same figures as citewise usage --by ${by}).`;
  const empty = series.totals.length === 0;
  $("usage-empty").hidden = !empty;
  $("usage-content").hidden = empty;
  state.calls = calls.data;
  if (empty) return;
  state.series = series;
  renderTotals(series);
  renderChart(series);
  renderGroups(series);
  renderCalls(true);
}

function renderTotals(series) {
  const sum = (name) => series.totals.reduce((total, row) => total + (row[name] || 0), 0);
  const priced = series.totals.some((row) => row.cost_usd !== null);
  const unpriced = sum("unpriced_calls");
  const items = [
    ["Calls", count(sum("calls")), "total-calls"],
    ["Failed", count(sum("failed")), "total-failed"],
    ["Tokens", count(sum("tokens")), "total-tokens"],
    ["Cost", (priced ? usd(sum("cost_usd")) : "–") + (unpriced ? ` + ${unpriced} unpriced` : ""),
      "total-cost"],
    ["Cache hits", count(sum("cache_hits")), "total-cache-hits"],
    ["Saved by the cache", usd(sum("saved_usd")), "total-saved"],
  ];
  const list = $("usage-totals");
  list.replaceChildren();
  for (const [label, value, id] of items) {
    const box = el("div");
    box.append(el("dt", label));
    const dd = el("dd", value);
    dd.id = id;
    box.append(dd);
    list.append(box);
  }
}

function colourOf(groups) {
  const colours = new Map();
  groups.forEach((group, n) => colours.set(group, COLOURS[n % COLOURS.length]));
  return colours;
}

// -- charts (uPlot) -------------------------------------------------------------------------

// Every chart drawn, by its box: redrawn at the box's width when the window is resized.
const charts = new Map();

function cssColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// A uPlot chart in `box` (the previous one there replaced) at the box's own width, so labels
// keep their size on a phone; `tall(width)` is its height. uPlot sets its sizes through the
// CSSOM (element.style), which the page's CSP (style-src 'self') allows: no inline style.
function plot(box, options, data, tall = () => 200) {
  for (const [other, { chart }] of charts) { // this box's previous chart, and those removed
    if (other === box || !other.isConnected) {
      chart.destroy();
      charts.delete(other);
    }
  }
  const width = Math.max(box.clientWidth || 720, 240);
  const muted = cssColour("--muted"), line = cssColour("--line");
  const axis = { stroke: muted, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
  const chart = new uPlot({
    width, height: tall(width), ms: 1,
    padding: [10, 44, 0, 0], // room for the last time label at the right
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    ...options,
    axes: options.axes.map((a, n) => ({ ...axis, ...(n === 0 ? { size: 36 } : {}), ...a })),
  }, data, box);
  box.uplot = chart; // for the browser tests: the arrays drawn
  charts.set(box, { chart, tall });
  return chart;
}

function resizeCharts() {
  for (const [box, { chart, tall }] of charts) {
    if (box.clientWidth > 0) {
      const width = Math.max(box.clientWidth, 240);
      if (width !== chart.width) chart.setSize({ width, height: tall(width) });
    }
  }
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(resizeCharts, 150);
});

// What the cursor points at, as text under the chart (the hidden table has every number).
function readout(node, describe) {
  return (u) => {
    const idx = u.cursor.idx;
    node.textContent = idx === null || idx === undefined ? "" : describe(idx);
  };
}

// The chart's numbers as a table a screen reader reads (and the tests compare to the API).
function dataTable(table, caption, head, rows) {
  table.replaceChildren();
  table.createCaption().textContent = caption;
  const top = table.createTHead().insertRow();
  for (const name of head) {
    const th = el("th", name);
    th.scope = "col";
    top.append(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    row.forEach((cell, n) => {
      const node = el(n === 0 ? "th" : "td", cell);
      if (n === 0) node.scope = "row";
      tr.append(node);
    });
  }
}

function timeTick(ms, incr) {
  const date = new Date(ms);
  if (incr >= 86400000) return date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  if (incr >= 3600000) {
    return date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "numeric" });
  }
  if (incr >= 60000) return date.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
  return date.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit", second: "2-digit" });
}
// A time axis labelled in the browser's locale (uPlot's own labels are English).
const timeAxis = { space: 90, values: (u, splits, _axis, _space, incr) => splits.map((t) => timeTick(t, incr)) };

function renderChart(series) {
  const metric = $("usage-metric").value;
  const metricName = $("usage-metric").selectedOptions[0].textContent;
  const colours = colourOf(series.groups);
  // Each group's value per bucket (null: no call of it then), in the API's order.
  const at = new Map(series.buckets.map((b, n) => [b, n]));
  const values = series.groups.map(() => series.buckets.map(() => null));
  for (const cell of series.data) {
    values[series.groups.indexOf(cell.group)][at.get(cell.bucket)] = cell[metric] || 0;
  }
  // Stacked: the bar of group n reaches the sum of groups 0..n, and the tallest (the last
  // group's) is drawn first so each lower one covers its share of it.
  const sums = [];
  values.forEach((row, n) => {
    sums.push(row.map((v, i) => (n ? sums[n - 1][i] : 0) + (v || 0)));
  });
  const order = series.groups.map((_, n) => n).reverse();
  const bars = uPlot.paths.bars({ size: [0.7, 60], gap: 1 });
  const label = (i) => bucketLabel(series.buckets[i], series.bucket);
  const short = (v) => (metric === "cost_usd" ? shortUsd.format(v)
    : (v >= 100000 ? compactCount : numberFormat).format(v));
  const box = $("usage-chart");
  box.setAttribute("aria-label", `${metricName} per ${series.bucket} by ${series.by}, stacked; ` +
    "the figures are in the table that follows");
  plot(box, {
    scales: {
      x: { time: false, range: () => [-0.5, series.buckets.length - 0.5] },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.05 : 1] },
    },
    axes: [
      {
        // A label every few buckets, as many as fit.
        splits: (u) => {
          const every = Math.ceil(series.buckets.length / Math.max(Math.floor(u.width / 80), 1));
          return series.buckets.map((_, i) => i).filter((i) => i % every === 0);
        },
        values: (u, splits) => splits.map((i) => label(i)),
      },
      { size: 72, values: (u, splits) => splits.map(short) },
    ],
    series: [{}, ...order.map((n) => ({
      label: series.groups[n] || "(none)", fill: colours.get(series.groups[n]),
      stroke: colours.get(series.groups[n]), width: 0, paths: bars, points: { show: false },
    }))],
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    hooks: {
      setCursor: [readout($("usage-readout"), (i) => `${label(i)}: ` + series.groups
        .map((group, n) => [group, values[n][i]]).filter(([, v]) => v !== null)
        .map(([group, v]) => `${group || "(none)"} ${metricValue(metric, v)}`).join(", "))],
    },
  }, [series.buckets.map((_, i) => i), ...order.map((n) => sums[n])],
  (width) => (width < 500 ? 220 : 280));
  box.uplot.groups = { names: series.groups, values }; // for the tests: unstacked
  dataTable($("usage-chart-table"),
    `${metricName} per ${series.bucket} (UTC) by ${series.by}`,
    [series.bucket === "hour" ? "Hour" : "Day", ...series.groups.map((g) => g || "(none)")],
    series.buckets.map((bucket, i) => [label(i),
      ...values.map((row) => (row[i] === null ? "–" : metricValue(metric, row[i])))]));
  $("usage-readout").textContent = "";
  $("usage-chart-caption").textContent =
    `${metricName} per ${series.bucket} (UTC ${series.bucket}s), stacked by ${series.by}.`;
  const legend = $("usage-legend");
  legend.replaceChildren();
  for (const group of series.groups) {
    const item = el("li");
    const swatch = el("span", "", "swatch");
    swatch.style.background = colours.get(group);
    item.append(swatch, document.createTextNode(group || "(none)"));
    legend.append(item);
  }
}

function renderGroups(series) {
  $("groups-by").textContent = series.by;
  $("usage-groups-head").textContent = series.by;
  const body = $("usage-groups").tBodies[0];
  body.replaceChildren();
  for (const row of series.totals) {
    const [tr] = headedRow({group: row.group}, row.group || "(none)");
    const cost = usd(row.cost_usd) + (row.unpriced_calls ? ` + ${row.unpriced_calls} unpriced` : "");
    const cells = [
      [row.calls, "calls"], [row.failed, "failed"], [row.prompt_tokens, "prompt"],
      [row.completion_tokens, "completion"],
    ].map(([value, name]) => [count(value), name]);
    cells.push([cost, "cost"], [count(row.cache_hits), "cache-hits"], [usd(row.saved_usd), "saved"]);
    for (const [text, name] of cells) {
      const td = el("td", text, "num");
      td.dataset.col = name;
      tr.append(td);
    }
    body.append(tr);
  }
  const top = $("usage-top");
  top.replaceChildren();
  const byGroup = new Map(series.totals.map((row) => [row.group, row]));
  for (const group of series.top) {
    const row = byGroup.get(group);
    const item = el("li");
    item.append(el("span", group || "(none)", "name"), " ",
      el("span", `${usd(row.cost_usd)} · ${count(row.tokens)} tokens`, "muted"));
    top.append(item);
  }
}

function fillSelect(select, values, all) {
  const chosen = select.value;
  select.replaceChildren(el("option", all));
  select.options[0].value = "";
  for (const value of values) {
    const option = el("option", value);
    option.value = value;
    select.append(option);
  }
  select.value = values.includes(chosen) ? chosen : "";
}

function renderCalls(refill) {
  const calls = state.calls;
  if (refill) {
    fillSelect($("calls-key"), [...new Set(calls.map((c) => c.key))].sort(), "All keys");
    fillSelect($("calls-status"), [...new Set(calls.map((c) => c.status))].sort(), "All statuses");
  }
  const key = $("calls-key").value;
  const status = $("calls-status").value;
  const matching = calls.filter((c) => (!key || c.key === key) && (!status || c.status === status));
  const shown = matching.slice(-CALLS_SHOWN).reverse(); // newest first
  const body = $("calls-table").tBodies[0];
  body.replaceChildren();
  for (const c of shown) {
    const tr = el("tr");
    tr.dataset.key = c.key;
    tr.dataset.status = c.status;
    const values = [
      [shortWhen(c.at)], [c.key || "–"], [c.assistant], [c.purpose], [c.target],
      [c.attempt, "num"], [c.status + (c.cache_hit ? " (cache hit)" : ""), `status-${c.status}`],
      [`${count(c.prompt_tokens)}${c.estimated ? "~" : ""}`, "num"],
      [count(c.completion_tokens), "num"], [seconds(c.latency_s), "num"],
      [seconds(c.first_token_s), "num"], [usd(c.cost_usd), "num"],
    ];
    for (const [text, className] of values) tr.append(el("td", text, className));
    if (c.error) tr.title = c.error;
    body.append(tr);
  }
  $("calls-note").textContent = matching.length > shown.length
    ? `${matching.length} calls match; the newest ${shown.length} are shown.`
    : matching.length === 1 ? "1 call matches." : `${matching.length} calls match.`;
}

$("usage-controls").addEventListener("submit", (event) => {
  event.preventDefault();
  loadUsage().catch(failed);
});
for (const id of ["usage-range", "usage-by"]) {
  $(id).addEventListener("change", () => loadUsage().catch(failed));
}
$("usage-metric").addEventListener("change", () => state.series && renderChart(state.series));
$("calls-key").addEventListener("change", () => renderCalls(false));
$("calls-status").addEventListener("change", () => renderCalls(false));

// -- keys -----------------------------------------------------------------------------------

async function loadKeys() {
  const query = new URLSearchParams({ revoked: String($("keys-revoked").checked) });
  const [body, budgets] = await Promise.all([
    api(`/v1/admin/keys?${query}`), api("/v1/admin/budgets"),
  ]);
  const budgetsOf = new Map();
  for (const b of budgets.data.filter((b) => b.kind === "key")) {
    const text = `${budgetAmount(b, b.amount, true)}/${b.period} (${Math.round((100 * b.spent) / b.amount)}% spent)`;
    budgetsOf.set(b.subject, [...(budgetsOf.get(b.subject) || []), text]);
  }
  const table = $("keys-table").tBodies[0];
  table.replaceChildren();
  $("keys-empty").hidden = body.data.length > 0;
  for (const k of body.data) {
    const [tr] = headedRow({key: k.name}, k.name);
    const values = [
      [k.user || "(service)"], [`${k.prefix}…`], [k.scopes.join(", ")],
      [k.collections.join(", ")], [limits(k)],
      [new Date(k.created).toLocaleDateString()], [k.last_used ? shortWhen(k.last_used) : "never"],
      [count(k.requests_24h), "num"], [count(k.rate_limited_24h), "num"],
      [count(k.requests), "num"], [count(k.rate_limited), "num"],
      [(budgetsOf.get(k.name) || ["–"]).join("; ")],
    ];
    for (const [text, className] of values) tr.append(el("td", text, className));
    const action = el("td");
    if (k.revoked) {
      action.textContent = `revoked ${new Date(k.revoked).toLocaleDateString()}`;
      action.title = `revoked ${when(k.revoked)}`;
      action.className = "wrap";
    } else {
      const button = el("button", "Revoke", "danger");
      button.type = "button";
      button.setAttribute("aria-label", `Revoke key ${k.name}`);
      button.addEventListener("click", () => revoke(k.name));
      action.append(button);
    }
    tr.append(action);
    table.append(tr);
  }
}

function limits(k) {
  const parts = [];
  if (k.rpm) parts.push(`${count(k.rpm)} rpm`);
  if (k.tpm) parts.push(`${count(k.tpm)} tpm`);
  return parts.length ? parts.join(", ") : "none";
}

async function revoke(name) {
  if (!window.confirm(`Revoke key ${name}? Requests with it are refused from now on.`)) return;
  try {
    await api(`/v1/admin/keys/${encodeURIComponent(name)}`, { method: "DELETE" });
    $("status").textContent = "";
    await loadKeys();
    $("keys-title").focus();
  } catch (error) {
    failed(error);
  }
}

$("keys-revoked").addEventListener("change", () => loadKeys().catch(failed));

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("create-error").textContent = "";
  const scopes = [...document.querySelectorAll("#create-form input[name=scope]:checked")]
    .map((box) => box.value);
  const body = {
    name: $("new-name").value.trim(),
    scopes,
    collections: $("new-collections").value.split(",").map((s) => s.trim()).filter(Boolean),
  };
  for (const [id, name] of [["new-rpm", "rpm"], ["new-tpm", "tpm"]]) {
    if ($(id).value) body[name] = Number($(id).value);
  }
  if ($("new-user").value.trim()) body.user = $("new-user").value.trim();
  if (!scopes.length) {
    $("create-error").textContent = "Choose at least one scope.";
    return;
  }
  try {
    const created = await api("/v1/admin/keys", { method: "POST", json: body });
    $("secret-name").textContent = created.name;
    $("secret-value").value = created.key;
    $("secret-box").hidden = false;
    $("create-form").reset();
    $("secret-value").focus();
    $("secret-value").select();
    await loadKeys();
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else $("create-error").textContent = error.message;
  }
});

$("secret-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("secret-value").value);
    $("secret-copy").textContent = "Copied";
  } catch (_) {
    $("secret-value").select();
  }
});
$("secret-done").addEventListener("click", () => {
  $("secret-value").value = "";
  $("secret-box").hidden = true;
  $("secret-copy").textContent = "Copy";
  $("new-name").focus();
});

// -- models ---------------------------------------------------------------------------------

const BREAKER_TEXT = { closed: "closed", open: "open (skipped)", half_open: "half-open (probing)" };

function percent(value) {
  return value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)}%`;
}

async function loadModels() {
  const body = await api("/v1/admin/models");
  $("models-since").textContent = when(body.since);
  const list = $("models-list");
  list.replaceChildren();
  for (const chain of body.data) {
    const card = el("article", undefined, "card chain");
    card.dataset.chain = chain.name;
    const kind = chain.alias ? `alias, ${chain.targets.length} target${chain.targets.length === 1 ? "" : "s"}`
      : "one target";
    card.append(el("h3", `${chain.name} (${kind})`));
    const used = chain.assistants.length
      ? `Used by the assistant${chain.assistants.length === 1 ? "" : "s"} ${chain.assistants.join(", ")}.`
      : "No assistant uses this alias.";
    card.append(el("p", `${used} The breaker opens after ${chain.breaker_failures} failures ` +
      `within a minute and probes again after ${chain.breaker_cooldown_s} s.`, "muted"));
    const rows = scrollTable(card, `Targets of ${chain.name}`, undefined, [["target"],
      ["breaker"], ["calls", "num"], ["failed", "num"], ["error rate", "num"],
      ["latency p50 s", "num"], ["latency p95 s", "num"], ["first token p50 s", "num"],
      ["first token p95 s", "num"], ["last error"], ["check"]]);
    for (const t of chain.targets) {
      const [tr, th] = headedRow({target: t.spec}, t.spec);
      if (t.base_url) th.title = t.base_url;
      const breaker = el("td", BREAKER_TEXT[t.breaker] || t.breaker, t.breaker === "closed" ? "ok" : "bad");
      breaker.dataset.col = "breaker";
      tr.append(breaker);
      const skipped = t.skipped ? ` (+${count(t.skipped)} skipped)` : "";
      for (const [text, name] of [
        [count(t.calls) + skipped, "calls"], [count(t.failed), "failed"],
        [percent(t.error_rate), "error-rate"],
        [seconds(t.latency_p50_s), "latency-p50"], [seconds(t.latency_p95_s), "latency-p95"],
        [seconds(t.first_token_p50_s), "first-token-p50"],
        [seconds(t.first_token_p95_s), "first-token-p95"],
      ]) {
        const td = el("td", text, "num");
        td.dataset.col = name;
        tr.append(td);
      }
      const error = el("td", t.last_error || "–", "wrap error-text");
      error.dataset.col = "last-error";
      if (t.last_error_at) error.title = `at ${when(t.last_error_at)}`;
      tr.append(error);
      const action = el("td");
      const button = el("button", "Test this target", "secondary");
      button.type = "button";
      button.setAttribute("aria-label", `Test this target: ${t.spec} (${chain.name})`);
      button.addEventListener("click", () => testTarget(chain.name, t.spec, card, button));
      action.append(button);
      tr.append(action);
      rows.append(tr);
    }
    const result = el("p", "", "test-result");
    result.setAttribute("role", "status");
    card.append(result);
    list.append(card);
  }
}

async function testTarget(chain, target, card, button) {
  const result = card.querySelector(".test-result");
  button.disabled = true;
  result.className = "test-result";
  result.textContent = `Testing ${target}…`;
  try {
    const body = await api("/v1/admin/models/test", { method: "POST", json: { chain, target } });
    result.dataset.ok = String(body.ok);
    result.className = `test-result ${body.ok ? "ok" : "error"}`;
    const notes = body.notes.length ? ` (${body.notes.join("; ")})` : "";
    result.textContent = `${body.ok ? "✓" : "✗"} ${body.target}: ${body.detail}${notes} ` +
      `— ${body.seconds.toFixed(2)} s; breaker ${BREAKER_TEXT[body.breaker] || body.breaker}.`;
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else result.textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

// -- quality: feedback ---------------------------------------------------------------------

async function loadFeedback() {
  const rating = $("feedback-rating").value;
  const query = rating ? `?${new URLSearchParams({ rating })}` : "";
  const body = await api(`/v1/admin/feedback${query}`);
  const total = body.up + body.down;
  $("feedback-empty").hidden = total > 0;
  $("feedback-counts").textContent = total
    ? `${count(total)} rated answers: ${count(body.up)} helpful, ${count(body.down)} not helpful; ` +
      `${count(body.data.length)} shown.`
    : "";
  const table = $("feedback-table").tBodies[0];
  table.replaceChildren();
  for (const f of body.data) {
    const tr = el("tr");
    tr.dataset.id = String(f.id);
    tr.dataset.rating = String(f.rating);
    tr.append(el("td", shortWhen(f.created)));
    const rating = el("td", f.rating > 0 ? "▲ helpful" : "▼ not helpful", f.rating > 0 ? "ok" : "bad");
    rating.dataset.col = "rating";
    tr.append(rating);
    for (const [text, name] of [[f.question, "question"], [f.answer, "answer"]]) {
      const td = el("td", undefined, "wrap long");
      td.dataset.col = name;
      td.append(el("div", text, "clip"));
      tr.append(td);
    }
    const cited = el("td", undefined, "wrap long");
    cited.dataset.col = "citations";
    if (f.citations.length) {
      const list = el("ul", undefined, "cited");
      for (const c of f.citations) {
        const where = [c.location, c.source].filter(Boolean).join(" · ");
        const item = el("li", `[${c.number ?? "?"}] ${c.title || c.source || "untitled"}`);
        if (where) item.append(el("span", ` ${where}`, "muted"));
        if (c.quote) item.title = c.quote;
        list.append(item);
      }
      cited.append(list);
    } else {
      cited.textContent = "none";
    }
    tr.append(cited);
    const comment = el("td", f.comment || "–", "wrap");
    comment.dataset.col = "comment";
    tr.append(comment, el("td", f.key || "–"));
    table.append(tr);
  }
}

async function exportFeedback() {
  const collection = $("export-collection").value.trim() || "default";
  const headers = new Headers();
  if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
  const response = await fetch(
    `/v1/admin/feedback/export?${new URLSearchParams({ collection })}`, { headers });
  if (!response.ok) {
    const error = new Error(`${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  const blob = await response.blob();
  const link = el("a");
  link.href = URL.createObjectURL(blob);
  link.download = `feedback-${collection}.jsonl`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

$("feedback-rating").addEventListener("change", () => loadFeedback().catch(failed));
$("feedback-controls").addEventListener("submit", (event) => {
  event.preventDefault();
  exportFeedback().catch(failed);
});

// -- quality: evaluation runs ---------------------------------------------------------------

const KIND_COLOURS = { retrieval: COLOURS[0], answers: COLOURS[1] };
const scoreFormat = new Intl.NumberFormat(undefined, {
  minimumFractionDigits: 3, maximumFractionDigits: 3,
});

function score(value) {
  return value === null || value === undefined ? "–" : scoreFormat.format(value);
}
function metricName(main) {
  return main.mode ? `${main.name} (${main.mode})` : main.name.replace(/_/g, " ");
}
function otherMetrics(run) {
  if (run.kind === "retrieval") {
    return Object.entries(run.metrics).map(([mode, values]) =>
      `${mode}: ` + Object.entries(values).map(([name, v]) => `${name} ${score(v)}`).join(", "))
      .join("; ");
  }
  return Object.entries(run.metrics)
    .filter(([name]) => name !== run.main_metric.name)
    .map(([name, v]) => `${name.replace(/_/g, " ")} ${name === "seconds" ? seconds(v) : score(v)}`)
    .join(", ");
}

function loadQuality() {
  return Promise.all([loadFeedback(), loadEvalRuns()]);
}

async function loadEvalRuns() {
  const body = await api("/v1/admin/eval/runs");
  const runs = body.data;
  $("eval-empty").hidden = runs.length > 0;
  $("eval-table-box").hidden = runs.length === 0;
  $("eval-trend-box").hidden = runs.length === 0;
  if (!runs.length) $("eval-detail").hidden = true;
  const table = $("eval-table").tBodies[0];
  table.replaceChildren();
  for (const run of runs) {
    const tr = el("tr");
    tr.dataset.id = String(run.id);
    tr.dataset.kind = run.kind;
    const dataset = el("td", run.dataset, "wrap");
    dataset.dataset.col = "dataset";
    const main = el("td", `${metricName(run.main_metric)} ${score(run.main_metric.value)}`);
    main.dataset.col = "main";
    const others = el("td", otherMetrics(run), "wrap");
    others.dataset.col = "metrics";
    const action = el("td");
    const button = el("button", `Show run ${run.id}`, "secondary");
    button.type = "button";
    button.setAttribute("aria-controls", "eval-detail");
    button.setAttribute("aria-expanded", String(state.evalRun === run.id));
    button.addEventListener("click", () => showEvalRun(run.id).catch(failed));
    action.append(button);
    tr.append(el("td", shortWhen(run.created)), el("td", run.kind), dataset,
      el("td", count(run.queries), "num"), main, others, action);
    table.append(tr);
  }
  if (runs.length) renderEvalTrend(runs);
}

function renderEvalTrend(runs) {
  // The main metric of each kind over time: a line per kind, a dot per run (0 to 1).
  const kinds = [...new Set(runs.map((r) => r.kind))].sort();
  const points = runs.filter((r) => r.main_metric.value !== null)
    .map((r) => ({ run: r, time: new Date(r.created).getTime() }))
    .sort((a, b) => a.time - b.time || a.run.id - b.run.id);
  const summary = kinds.map((kind) => {
    const mine = points.filter((p) => p.run.kind === kind);
    if (!mine.length) return `${kind}: no value`;
    const latest = mine[mine.length - 1].run;
    return `${kind} ${metricName(latest.main_metric)}, latest ${score(latest.main_metric.value)} ` +
      `over ${mine.length} run${mine.length === 1 ? "" : "s"}`;
  }).join("; ");
  const box = $("eval-trend");
  box.setAttribute("aria-label", `Main metric per kind over time: ${summary}`);
  const describe = (p) => `Run ${p.run.id}, ${p.run.kind}, ${shortWhen(p.run.created)}: ` +
    `${metricName(p.run.main_metric)} ${score(p.run.main_metric.value)}`;
  const first = points.length ? points[0].time : Date.now();
  const last = points.length ? points[points.length - 1].time : first;
  const pad = Math.max((last - first) * 0.04, 60000); // the first and last dots whole
  plot(box, {
    scales: { x: { time: true, range: () => [first - pad, last + pad] }, y: { range: [0, 1] } },
    axes: [timeAxis, { size: 48, values: (u, splits) => splits.map((v) => scoreFormat.format(v)) }],
    // A line through each kind's runs (across the other kind's), a dot on each of its runs.
    series: [{}, ...kinds.map((kind) => ({
      label: kind, stroke: KIND_COLOURS[kind] || COLOURS[2], width: 2, spanGaps: true,
      points: { show: true, size: 8, fill: KIND_COLOURS[kind] || COLOURS[2] },
    }))],
    hooks: { setCursor: [readout($("eval-readout"), (i) => describe(points[i]))] },
  }, [points.map((p) => p.time), ...kinds.map((kind) =>
    points.map((p) => (p.run.kind === kind ? p.run.main_metric.value : null)))]);
  box.uplot.runs = points.map((p) => p.run.id); // for the tests: the run of each x
  dataTable($("eval-trend-table"), "Main metric of each run, oldest first",
    ["Run", "Date", "Kind", "Metric", "Value"],
    points.map((p) => [String(p.run.id), shortWhen(p.run.created), p.run.kind,
      metricName(p.run.main_metric), score(p.run.main_metric.value)]));
  $("eval-readout").textContent = "";
  $("eval-trend-caption").textContent =
    "Main metric of each run over time: nDCG@10 for retrieval (of the hybrid mode when run), " +
    "token F1 for answers.";
  const legend = $("eval-legend");
  legend.replaceChildren();
  for (const kind of kinds) {
    const item = el("li");
    const swatch = el("span", "", "swatch");
    swatch.style.background = KIND_COLOURS[kind] || COLOURS[2];
    item.append(swatch, document.createTextNode(kind));
    legend.append(item);
  }
}

function settingText(value) {
  if (value === null || value === undefined || value === "") return "–";
  return Array.isArray(value) ? value.join(", ") || "–" : String(value);
}

async function showEvalRun(id) {
  const run = await api(`/v1/admin/eval/runs/${encodeURIComponent(id)}`);
  state.evalRun = run.id;
  for (const button of $("eval-table").querySelectorAll("button[aria-controls]")) {
    button.setAttribute("aria-expanded", String(button.closest("tr").dataset.id === String(run.id)));
  }
  const detail = $("eval-detail");
  detail.hidden = false;
  detail.dataset.run = String(run.id);
  $("eval-detail-title").textContent =
    `Run ${run.id}: ${run.kind} on ${run.dataset}, ${when(run.created)} — ${count(run.queries)} queries`;
  $("eval-settings").textContent = "Settings: " + Object.entries(run.settings)
    .map(([name, value]) => `${name.replace(/_/g, " ")} ${settingText(value)}`).join(" · ");
  const table = $("eval-queries");
  const head = el("tr");
  const body = table.tBodies[0];
  body.replaceChildren();
  const columns = run.kind === "retrieval"
    ? ["id", "query", "expected", ...Object.keys(run.metrics).flatMap((m) => [`${m} nDCG@10`, `${m} ranked`])]
    : ["id", "question", "answer", "sources cited", "token F1", "citation recall", "refused"];
  for (const name of columns) {
    const th = el("th", name);
    th.scope = "col";
    head.append(th);
  }
  table.tHead.replaceChildren(head);
  for (const result of run.results) {
    const [tr] = headedRow({query: String(result.id)}, result.id);
    if (run.kind === "retrieval") {
      const query = el("td", result.query, "wrap long");
      query.dataset.col = "query";
      tr.append(query, el("td", Object.keys(result.expected).join(", ") || "–", "wrap"));
      for (const mode of Object.keys(run.metrics)) {
        const outcome = result.modes[mode] || { ranked: [], metrics: {} };
        const value = el("td", score(outcome.metrics["nDCG@10"]), "num");
        value.dataset.mode = mode;
        const ranked = el("td", undefined, "wrap");
        const list = el("ol", undefined, "ranked");
        for (const [documentId, docScore] of outcome.ranked) {
          const judged = result.expected[documentId] > 0;
          list.append(el("li", `${documentId} ${docScore.toFixed(4)}${judged ? " ✓ relevant" : ""}`,
            judged ? "ok" : undefined));
        }
        if (!outcome.ranked.length) ranked.textContent = "nothing found";
        else ranked.append(list);
        tr.append(value, ranked);
      }
    } else {
      const question = el("td", result.question, "wrap long");
      question.dataset.col = "query";
      const answer = el("td", undefined, "wrap long");
      answer.append(el("div", result.answer, "clip"));
      const m = result.metrics;
      tr.append(question, answer, el("td", result.citations.join(", ") || "none", "wrap"),
        el("td", score(m.token_f1), "num"), el("td", score(m.citation_recall), "num"),
        el("td", m.refused ? "yes" : "no"));
    }
    body.append(tr);
  }
  $("eval-detail-title").focus();
}

// -- collections and documents -------------------------------------------------------------

const DOCUMENTS_PAGE = 100;
const byteFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

function bytes(value) {
  if (value === null || value === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let size = value, unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${unit ? byteFormat.format(size) : numberFormat.format(size)} ${units[unit]}`;
}

function facts(list, items) {
  list.replaceChildren();
  for (const [label, value, name] of items) {
    const box = el("div");
    box.append(el("dt", label));
    const dd = el("dd", value);
    if (name) dd.dataset.field = name;
    box.append(dd);
    list.append(box);
  }
}

async function loadCollections() {
  const body = await api("/v1/admin/collections");
  $("collections-empty").hidden = body.data.length > 0;
  const list = $("collections-list");
  list.replaceChildren();
  for (const c of body.data) list.append(collectionCard(c));
  const open = state.documents && body.data.some((c) => c.name === state.documents.collection);
  if (!open) {
    $("documents-panel").hidden = true;
    $("document-viewer").hidden = true;
  }
}

function collectionCard(c) {
  const card = el("article", undefined, "card collection");
  card.dataset.collection = c.name;
  const titleId = `collection-${c.name}-title`;
  const title = el("h3", c.name);
  title.id = titleId;
  card.setAttribute("aria-labelledby", titleId);
  card.append(title);
  const sync = c.last_sync;
  const list = el("dl", undefined, "facts");
  facts(list, [
    ["Documents", count(c.documents), "documents"],
    ["Chunks", count(c.chunks), "chunks"],
    ["Tokens", count(c.tokens), "tokens"],
    ["Size of files", bytes(c.bytes), "bytes"],
    ["Embedder", `${c.embedder} (${c.dim} dimensions)`, "embedder"],
    ["Last sync", sync ? `${when(sync.finished_at || sync.started_at)} · ${sync.status}` : "never",
      "last-sync"],
    ["Access", `${count(c.open_documents)} open, ${count(c.restricted_documents)} restricted`,
      "access"],
  ]);
  card.append(list);
  if (c.sources.length) {
    const rows = scrollTable(card, `Sources of ${c.name}`, "sources", [["source kind"],
      ["documents", "num"], ["chunks", "num"], ["size", "num"], ["last written"],
      ["last sync"]]);
    for (const s of c.sources) {
      const [tr] = headedRow({kind: s.kind}, s.kind);
      for (const [text, className, name] of [
        [count(s.documents), "num", "documents"], [count(s.chunks), "num", "chunks"],
        [bytes(s.bytes), "num", "bytes"], [when(s.updated_at), "", "updated"],
        [s.failed ? `${count(s.failed)} failed` : "ok", s.failed ? "bad" : "ok", "status"],
      ]) {
        const td = el("td", text, className);
        td.dataset.col = name;
        tr.append(td);
      }
      rows.append(tr);
    }
  }
  if (sync && sync.failures.length) {
    card.append(el("h4", "Failed in the last sync"));
    const failures = el("ul", undefined, "failures");
    for (const f of sync.failures) {
      const item = el("li");
      item.append(el("span", f.source, "name"), document.createTextNode(": "),
        el("span", f.reason, "error"));
      failures.append(item);
    }
    card.append(failures);
  }
  const show = el("button", "Show documents", "secondary");
  show.type = "button";
  show.setAttribute("aria-label", `Show documents of ${c.name}`);
  show.setAttribute("aria-controls", "documents-panel");
  show.addEventListener("click", () => showDocuments(c.name).catch(failed));
  card.append(show);
  return card;
}

async function showDocuments(collection, keepViewer) {
  if (!state.documents || state.documents.collection !== collection) {
    state.documents = { collection, offset: 0 };
  }
  // The pages shown so far, again (the list changes under a delete): one request.
  const wanted = Math.min(state.documents.offset + DOCUMENTS_PAGE, 999);
  const query = new URLSearchParams({ limit: String(wanted + 1), offset: "0" });
  const body = await api(`/v1/collections/${encodeURIComponent(collection)}/documents?${query}`);
  const more = body.data.length > wanted;
  const documents = body.data.slice(0, wanted);
  $("documents-collection").textContent = collection;
  $("documents-panel").hidden = false;
  if (!keepViewer) $("document-viewer").hidden = true;
  $("documents-empty").hidden = documents.length > 0;
  $("documents-more").hidden = !more;
  const table = $("documents-table").tBodies[0];
  table.replaceChildren();
  for (const d of documents) {
    const [tr] = headedRow({id: String(d.id)}, d.title || "(untitled)", "wrap");
    tr.append(el("td", d.source, "wrap"), el("td", count(d.chunks), "num"),
      el("td", count(d.tokens), "num"), el("td", when(d.updated_at)));
    const actions = el("td");
    const view = el("button", "View", "secondary");
    view.type = "button";
    view.setAttribute("aria-label", `View document ${d.title || d.source}`);
    view.setAttribute("aria-controls", "document-viewer");
    view.addEventListener("click", () => viewDocument(collection, d.id).catch(failed));
    const remove = el("button", "Delete", "danger");
    remove.type = "button";
    remove.setAttribute("aria-label", `Delete document ${d.title || d.source}`);
    remove.addEventListener("click", () => deleteDocument(collection, d.id, d.title || d.source));
    actions.append(view, " ", remove);
    tr.append(actions);
    table.append(tr);
  }
  $("documents-status").textContent =
    `${count(documents.length)} document${documents.length === 1 ? "" : "s"} shown` +
    (more ? "; more below." : ".");
  if (!keepViewer) $("documents-title").focus();
}

$("documents-more").addEventListener("click", () => {
  state.documents.offset += DOCUMENTS_PAGE;
  showDocuments(state.documents.collection, true).catch(failed);
});

async function viewDocument(collection, id) {
  const d = await api(
    `/v1/admin/collections/${encodeURIComponent(collection)}/documents/${encodeURIComponent(id)}`);
  state.viewing = { collection, id, title: d.title || d.source };
  const viewer = $("document-viewer");
  viewer.hidden = false;
  viewer.dataset.id = String(d.id);
  $("viewer-title").textContent = d.title || "(untitled)";
  $("viewer-result").textContent = "";
  const access = d.access === "open" ? "open to the collection" : `only ${d.access.join(", ")}`;
  facts($("viewer-facts"), [
    ["Source", d.source, "source"],
    ["Kind", d.kind, "kind"],
    ["Chunks", count(d.chunks), "chunks"],
    ["Tokens", count(d.tokens), "tokens"],
    ["Updated", when(d.updated_at), "updated"],
    ["Who may read it", access, "access"],
  ]);
  $("viewer-reingest").disabled = !d.reingest.possible;
  $("viewer-reingest-note").textContent = d.reingest.possible
    ? "Re-ingest parses and embeds the file again (the document stays searchable meanwhile)."
    : `Re-ingest is not possible: ${d.reingest.reason}`;
  $("viewer-citations-note").textContent = d.citations_note;
  const list = $("viewer-chunks");
  list.replaceChildren();
  for (const c of d.chunk_list) {
    const item = el("li", undefined, "chunk");
    item.dataset.chunkId = String(c.id);
    item.append(el("p", `Chunk ${c.number} · ${c.location}`, "muted"));
    item.append(el("div", c.text, "chunk-text"));
    if (c.cited_by.length) {
      const cited = el("ul", undefined, "cited");
      cited.setAttribute("aria-label", `Rated answers that cited chunk ${c.number}`);
      for (const f of c.cited_by) cited.append(citedItem(f));
      item.append(cited);
    } else {
      item.append(el("p", "Not cited by any rated answer.", "muted not-cited"));
    }
    list.append(item);
  }
  $("viewer-earlier").hidden = d.cited_earlier_version.length === 0;
  const earlier = $("viewer-earlier-list");
  earlier.replaceChildren();
  for (const f of d.cited_earlier_version) earlier.append(citedItem(f));
  $("viewer-title").focus();
}

function citedItem(f) {
  const item = el("li", undefined, "cited-by");
  item.dataset.feedback = String(f.feedback_id);
  item.append(el("span", f.rating > 0 ? "▲ helpful" : "▼ not helpful", f.rating > 0 ? "ok" : "bad"),
    document.createTextNode(" "), el("span", `“${f.question}”`, "question"),
    el("span", ` — ${f.key || "no key"}, ${when(f.created)}`, "muted"));
  if (f.quote) item.title = f.quote;
  return item;
}

async function deleteDocument(collection, id, title) {
  if (!window.confirm(`Delete document ${title} from ${collection}? ` +
    "Its chunks leave the search; an uploaded file is deleted too.")) return;
  try {
    await api(`/v1/collections/${encodeURIComponent(collection)}/documents/${encodeURIComponent(id)}`,
      { method: "DELETE" });
    if (state.viewing && state.viewing.id === id) $("document-viewer").hidden = true;
    await loadCollections();
    await showDocuments(collection, true);
    $("documents-status").textContent = `Deleted ${title}.`;
    $("documents-title").focus();
  } catch (error) {
    failed(error);
  }
}

$("viewer-close").addEventListener("click", () => {
  $("document-viewer").hidden = true;
  $("documents-title").focus();
});
$("viewer-delete").addEventListener("click", () => {
  if (state.viewing) deleteDocument(state.viewing.collection, state.viewing.id, state.viewing.title);
});
$("viewer-reingest").addEventListener("click", async () => {
  const { collection, id } = state.viewing;
  const button = $("viewer-reingest");
  button.disabled = true;
  try {
    const job = await api(
      `/v1/admin/collections/${encodeURIComponent(collection)}/documents/${encodeURIComponent(id)}/reingest`,
      { method: "POST" });
    const result = $("viewer-result");
    result.replaceChildren(`Re-ingest queued as job ${job.id}: follow it under `);
    const link = el("a", "Jobs");
    link.href = "#jobs";
    result.append(link, ".");
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else $("viewer-result").textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

// -- ingest jobs -----------------------------------------------------------------------------

const JOB_POLL_MS = 1500;
const JOB_IDLE_POLL_MS = 5000;

async function loadJobs() {
  clearTimeout(state.jobsTimer);
  const status = $("jobs-status").value;
  const query = new URLSearchParams({ limit: "100" });
  if (status) query.set("status", status);
  const body = await api(`/v1/admin/jobs?${query}`);
  const total = Object.values(body.counts).reduce((sum, n) => sum + n, 0);
  $("jobs-empty").hidden = total > 0;
  $("jobs-counts").textContent = total
    ? `${count(total)} jobs: ${count(body.counts.queued)} queued, ${count(body.counts.running)} ` +
      `running, ${count(body.counts.done)} done, ${count(body.counts.failed)} failed` +
      (status && !body.data.length ? `; none ${status}.` : ".")
    : "";
  const seen = JSON.stringify(body.data);
  if (seen !== state.jobsSeen) { // redrawn only when something changed: focus stays put
    state.jobsSeen = seen;
    const list = $("jobs-list");
    list.replaceChildren();
    for (const job of body.data) list.append(jobCard(job));
  }
  // Polled while the view is open: often while a job is queued or running (its files'
  // progress), now and then otherwise (a new upload appears without a reload).
  const live = body.counts.queued + body.counts.running > 0;
  state.jobsTimer = setTimeout(() => {
    if (state.view === "jobs" && !$("main").hidden) loadJobs().catch(failed);
  }, live ? JOB_POLL_MS : JOB_IDLE_POLL_MS);
}

function fileProgress(job, f) {
  const cell = el("td");
  cell.dataset.col = "progress";
  if (f.chunks_total && f.status === "ingesting") {
    const bar = el("progress");
    bar.max = f.chunks_total;
    bar.value = f.chunks_done;
    bar.setAttribute("aria-label", `Chunks of ${f.name} embedded`);
    cell.append(bar, el("span",
      ` ${count(f.chunks_done)}/${count(f.chunks_total)} chunks` +
      (f.eta_seconds ? `, about ${Math.ceil(f.eta_seconds)} s left` : ""), "muted"));
  } else {
    cell.textContent = f.status === "queued" ? "waiting"
      : f.status.startsWith("ingesting") ? "in progress" : "finished";
  }
  return cell;
}

function jobCard(job) {
  const card = el("article", undefined, "card job");
  card.dataset.job = job.id;
  card.dataset.status = job.status;
  const titleId = `job-${job.id}-title`;
  const title = el("h3", `Job ${job.id} · ${job.collection}`);
  title.id = titleId;
  card.setAttribute("aria-labelledby", titleId);
  const badge = el("span", job.status, `badge status-${job.status}`);
  badge.dataset.field = "status";
  title.append(" ", badge);
  card.append(title);
  const list = el("dl", undefined, "facts");
  const counts = Object.entries(job.counts || {}).filter(([, n]) => n)
    .map(([name, n]) => `${count(n)} ${n === 1 ? name.replace(/s$/, "") : name}`).join(", ");
  facts(list, [
    ["Files", `${count(job.done)} of ${count(job.total)} done`, "files"],
    ["Failed files", count(job.failed), "failed"],
    ["Created", when(job.created), "created"],
    ["Finished", job.finished ? when(job.finished) : "not yet", "finished"],
    ["Documents", counts || "–", "counts"],
  ]);
  card.append(list);
  if (job.retry_of) card.append(el("p", `A retry of job ${job.retry_of}.`, "muted"));
  if (job.retried_by) card.append(el("p", `Retried as job ${job.retried_by}.`, "muted"));
  if (job.error) card.append(el("p", `The job failed: ${job.error}`, "error"));
  const rows = scrollTable(card, `Files of job ${job.id}`, "job-files", [["file"], ["status"],
    ["progress"], ["chunks", "num"], ["reason it failed"]]);
  for (const f of job.files) {
    const [tr] = headedRow({file: f.name, status: f.status}, f.name, "wrap");
    const status = el("td", f.status, f.status === "failed" ? "bad" : "");
    status.dataset.col = "status";
    tr.append(status, fileProgress(job, f), el("td", count(f.chunks), "num"));
    const error = el("td", f.error || "", f.error ? "error-text wrap" : "");
    error.dataset.col = "error";
    tr.append(error);
    rows.append(tr);
  }
  if (job.retryable) {
    const n = job.retry_files.length;
    const text = `Retry ${n} failed file${n === 1 ? "" : "s"}`;
    const button = el("button", text, "secondary");
    button.type = "button";
    button.setAttribute("aria-label", `${text} of job ${job.id}: ${job.retry_files.join(", ")}`);
    button.addEventListener("click", () => retryJob(job.id, button));
    card.append(button);
  } else if (job.retry_note) {
    card.append(el("p", job.retry_note, "muted retry-note"));
  }
  return card;
}

async function retryJob(id, button) {
  button.disabled = true;
  try {
    const job = await api(`/v1/admin/jobs/${encodeURIComponent(id)}/retry`, { method: "POST" });
    $("jobs-result").textContent = `Job ${id}'s failed files are queued again as job ${job.id}.`;
    state.jobsSeen = "";
    await loadJobs();
  } catch (error) {
    if (error.status === 401 || error.status === 403) failed(error);
    else $("jobs-result").textContent = error.message;
    button.disabled = false;
  }
}

$("jobs-controls").addEventListener("submit", (event) => {
  event.preventDefault();
  loadJobs().catch(failed);
});
$("jobs-status").addEventListener("change", () => loadJobs().catch(failed));

// -- budgets --------------------------------------------------------------------------------

function budgetAmount(budget, value, short) {
  if (budget.metric !== "usd") return `${count(Math.round(value))} tokens`;
  return short ? shortUsd.format(value) : usd(value);
}

async function loadBudgets() {
  const body = await api("/v1/admin/budgets");
  const list = $("budgets-list");
  list.replaceChildren();
  $("budgets-empty").hidden = body.data.length > 0;
  for (const b of body.data) {
    const card = el("article", undefined, "card budget");
    card.dataset.subject = `${b.kind}:${b.subject}`;
    const title = el("h3", `${b.kind} ${b.subject}: ${budgetAmount(b, b.amount, true)} per ${b.period}`);
    card.append(title);
    const facts = el("dl", undefined, "facts");
    const projection = b.exhausted ? "exhausted"
      : b.projected_exhaustion ? when(b.projected_exhaustion)
        : "not before it resets";
    for (const [label, value, name] of [
      ["Spent this period", budgetAmount(b, b.spent), "spent"],
      ["Remaining", budgetAmount(b, b.remaining), "remaining"],
      ["Burn rate", `${budgetAmount(b, b.burn_per_hour)} per hour`, "rate"],
      ["Runs out", projection, "projection"],
      ["Resets", when(b.resets_at), "resets"],
      ["Kind", b.hard ? "hard (calls refused)" : "soft (reported only)", "kind"],
    ]) {
      const box = el("div");
      box.append(el("dt", label));
      const dd = el("dd", value);
      dd.dataset.field = name;
      box.append(dd);
      facts.append(box);
    }
    card.append(facts);
    const meter = el("meter");
    meter.min = 0;
    meter.max = b.amount;
    meter.value = Math.min(b.spent, b.amount);
    meter.high = b.amount * 0.8;
    meter.setAttribute("aria-label", `Share of the budget spent: ${Math.round((100 * b.spent) / b.amount)}%`);
    card.append(meter);
    const box = el("div", undefined, "chart burn");
    box.setAttribute("role", "img");
    const said = el("p", "", "readout muted");
    said.setAttribute("aria-hidden", "true");
    const table = el("table", undefined, "visually-hidden");
    card.append(box, said, el("p",
      "Solid: spent so far; dotted: at this period's rate; dashed: the limit.", "muted"), table);
    list.append(card);
    burnChart(b, box, said, table); // once in the page, at the card's width
  }
}

function burnChart(b, box, said, table) {
  // Cumulative spend over the period (hours or days), the limit, and the projection.
  const start = new Date(b.period_start).getTime();
  const end = new Date(b.resets_at).getTime();
  const now = Math.min(Math.max(Date.now(), start), end);
  const projected = b.burn_per_hour > 0 ? b.spent + (b.burn_per_hour * (end - now)) / 3600000 : null;
  box.setAttribute("aria-label", `Spend over the ${b.period} against the limit of ` +
    `${budgetAmount(b, b.amount, true)}; ` + (b.projected_exhaustion
    ? `projected to run out ${when(b.projected_exhaustion)}`
    : "not projected to run out this period") + "; the figures are in the table that follows");
  // A step per hour (daily budgets) or day (monthly) in which something was spent, then
  // what is spent now; the projection runs from now to the period's end at this rate.
  const times = [start, ...b.burn.map((p) => new Date(p.at).getTime()), now, end];
  const spent = [0, ...b.burn.map((p) => p.spent), b.spent, null];
  const projection = times.map(() => null);
  if (projected !== null && now < end) {
    projection[times.length - 2] = b.spent;
    projection[times.length - 1] = projected;
  }
  const accent = cssColour("--accent"), error = cssColour("--error");
  const short = (v) => budgetAmount(b, v, true);
  const tick = (v) => (b.metric === "usd" ? shortUsd.format(v) : compactCount.format(v));
  const top = Math.max(b.amount, b.spent) * 1.2;
  const chart = plot(box, {
    scales: { x: { time: true, range: [start, end] }, y: { range: [0, top] } },
    axes: [timeAxis, { size: 64, values: (u, splits) => splits.map(tick) }],
    series: [{},
      { label: "spent", stroke: accent, width: 2, paths: uPlot.paths.stepped({ align: 1 }),
        points: { show: false } },
      { label: "limit", stroke: error, width: 1, dash: [4, 3], points: { show: false } },
      { label: "projection", stroke: accent, width: 1, dash: [3, 3], points: { show: false } }],
    hooks: {
      setCursor: [readout(said, (i) => (spent[i] === null ? ""
        : `${new Date(times[i]).toLocaleString(undefined, { month: "short", day: "numeric",
          hour: "numeric" })}: spent ${budgetAmount(b, spent[i])}`))],
      draw: [(u) => { // the limit's label, above its line at the right
        const ctx = u.ctx;
        ctx.save();
        ctx.font = `${Math.round(11 * uPlot.pxRatio)}px system-ui, sans-serif`;
        ctx.fillStyle = error;
        ctx.textAlign = "right";
        ctx.fillText(`limit ${short(b.amount)}`, u.bbox.left + u.bbox.width - 4 * uPlot.pxRatio,
          u.valToPos(b.amount, "y", true) - 4 * uPlot.pxRatio);
        ctx.restore();
      }],
    },
  }, [times, spent, times.map(() => b.amount), projection], () => 180);
  const at = (time) => new Date(time).toLocaleString(undefined, {
    month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
  });
  dataTable(table, `Spend of the ${b.kind} ${b.subject} budget over this ${b.period}`,
    ["Time", "Spent so far"],
    [...b.burn.map((p) => [at(p.at), budgetAmount(b, p.spent)]),
      [`now (${at(now)})`, budgetAmount(b, b.spent)],
      ...(projection[times.length - 1] !== null
        ? [[`at this rate, by ${at(end)}`, budgetAmount(b, projected)]] : []),
      ["limit", budgetAmount(b, b.amount)]]);
  return chart;
}

// -- health ---------------------------------------------------------------------------------

async function loadHealth() {
  const health = await api("/v1/admin/health");
  const summary = $("health-summary");
  summary.replaceChildren();
  for (const [label, value, id] of [
    ["Status", health.status, "health-status"],
    ["Version", health.version, "health-version"],
    ["Schema", health.schema || "–", "health-schema"],
    ["Replica", health.replica, "health-replica"],
    ["Authentication", health.auth ? "API keys" : "none (loopback only)", "health-auth"],
  ]) {
    const box = el("div");
    box.append(el("dt", label));
    const dd = el("dd", value);
    dd.id = id;
    box.append(dd);
    summary.append(box);
  }
  const body = $("health-components").tBodies[0];
  body.replaceChildren();
  for (const [name, status] of Object.entries(health.components)) {
    const [tr] = headedRow({component: name}, name);
    tr.append(el("td", status, status === "ok" ? "ok" : "bad"),
      el("td", health.details[name] || ""));
    body.append(tr);
  }
  renderReplicas(health);
}

function renderReplicas(health) {
  const rows = $("health-replicas").tBodies[0];
  rows.replaceChildren();
  for (const r of health.replicas || []) {
    const [tr] = headedRow({replica: r.id}, r.this ? `${r.id} (this one)` : r.id);
    tr.append(el("td", r.host), el("td", r.address || "–"), el("td", when(r.last_seen)),
      el("td", r.alive ? "running" : "not seen lately", r.alive ? "ok" : "bad"),
      el("td", r.version), el("td", r.schema || "–"), el("td", when(r.started)));
    rows.append(tr);
  }
  $("replicas-help").textContent = (health.replicas || []).length > 1
    ? "The servers sharing this store (PostgreSQL), each renewing its record every 10 seconds; " +
      "one not seen for 30 seconds has stopped or lost the store."
    : "This server process. Servers sharing a PostgreSQL store each appear here.";
}

start();

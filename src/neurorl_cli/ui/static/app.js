// neurorl ui: draws each page from the server's JSON routes with plotly.js (served by this
// server from the plotly package). Text from the registry is always set as text, never as HTML.
// Charts are redrawn with Plotly.react and a fixed uirevision, so a live update adds points
// without resetting the user's zoom or the seeds hidden from the legend.
"use strict";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const LIVE_EVERY = 3000;   // ms between polls while a run is queued or running
const IDLE_EVERY = 15000;  // ms between polls otherwise (a run may start at any time)

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString("en") : String(Number(value.toPrecision(4)));
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

const enc = encodeURIComponent;
const expLink = (ref, label) => el("a", { href: `/e/${enc(ref)}` }, label || ref);
const status = (s) => el("span", { class: `status-${s}` }, s);
const command = (text) => el("code", { class: "command", title: "select to copy" }, text);

function notice(text, cmd) {
  return el("p", { class: "notice" }, text, cmd ? [" ", command(cmd)] : null);
}

function showError(root, error) {
  root.replaceChildren(el("p", { class: "error" }, String(error.message || error)));
}

function setLive(live) {
  document.getElementById("live").replaceChildren(live ? el("span", { class: "badge" }, "live: runs are training") : "");
}

function poll(step, isLive) {
  // One request at a time; the next after the previous answered.
  const again = () => setTimeout(async () => {
    try { await step(); } catch (error) { console.warn(error); }
    again();
  }, isLive() ? LIVE_EVERY : IDLE_EVERY);
  again();
}

function table(columns, rows, options = {}) {
  // columns: [{key, label, num, render, sortable}]
  const head = el("tr", null, columns.map((c) => {
    const sorted = options.sort === c.key;
    return el("th", {
      class: [c.sortable ? "sortable" : "", sorted ? "sorted" : "", sorted && !options.descending ? "up" : ""].join(" ").trim() || null,
      onclick: c.sortable && options.onSort ? () => options.onSort(c.key) : null,
    }, c.label);
  }));
  const body = rows.map((row) => el("tr", null, columns.map((c) =>
    el("td", { class: c.num ? "num" : null }, c.render ? c.render(row) : fmt(row[c.key])))));
  return el("table", null, el("thead", null, head), el("tbody", null, body));
}

function dataTable(data) {
  const columns = data.columns.map((name, i) => ({ key: i, label: name, num: data.rows.some((r) => typeof r[i] === "number") }));
  const shown = table(columns, data.rows.slice(0, 200));
  const more = data.total_rows > 200 ? el("p", { class: "muted" }, `first 200 of ${data.total_rows} rows`) : null;
  return el("div", null, shown, more);
}

// ----------------------------------------------------------------------------- curves

function curveTraces(data, options = {}) {
  // Seeds as thin lines, the mean as a thick one, its 95% interval as a band; uids keep each
  // trace's legend state across redraws.
  const traces = [];
  const s = data.summary;
  if (s && (data.seeds || []).length !== 1) {
    traces.push({ x: s.x, y: s.low, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false,
      legendgroup: "mean", uid: "band-low", name: "95% low" });
    traces.push({ x: s.x, y: s.high, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(0,0,0,0.22)",
      legendgroup: "mean", uid: "band-high", name: "95% interval", hoverinfo: "skip" });
  }
  (data.seeds || []).forEach((seed, i) => traces.push({
    x: seed.x, y: seed.y, name: seed.label, uid: `seed-${seed.label}`, opacity: 0.5,
    mode: seed.x.length < 30 ? "lines+markers" : "lines", marker: { size: 4 },
    line: { width: 1, color: COLORS[i % COLORS.length] },
  }));
  if (s && (data.seeds || []).length !== 1) {
    traces.push({ x: s.x, y: s.mean, customdata: s.n, name: "mean over seeds", uid: "mean", legendgroup: "mean",
      mode: s.x.length < 30 ? "lines+markers" : "lines", line: { width: 2.5, color: "#111" },
      hovertemplate: "%{y:.4g} (mean of %{customdata} seeds)<extra>mean</extra>" });
  }
  return traces;
}

function drawChart(node, traces, xTitle, yTitle) {
  const layout = {
    uirevision: "keep", margin: { t: 20, r: 10, b: 45, l: 60 }, hovermode: "x unified",
    xaxis: { title: { text: xTitle } }, yaxis: { title: { text: yTitle } }, legend: { orientation: "v" },
  };
  return Plotly.react(node, traces, layout, { responsive: true, displaylogo: false });
}

// ----------------------------------------------------------------------------- experiments

function listState() {
  const params = new URLSearchParams(location.search);
  return { q: params.get("q") || "", task: params.get("task") || "", model: params.get("model") || "",
    status: params.get("status") || "", tag: params.get("tag") || "", sort: params.get("sort") || "id",
    desc: params.get("desc") === "1" };
}

function query(state) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) {
    if (k === "desc") { if (v) params.set("desc", "1"); } else if (v) params.set(k, v);
  }
  return params.toString();
}

async function experimentsPage(root) {
  const state = listState();
  const all = await getJSON("/api/experiments");
  const choices = (key) => [...new Set(all.flatMap((r) => (key === "tags" ? r.tags : [r[key]])))].sort();
  const select = (key, values) => el("select", { onchange: (e) => { state[key] = e.target.value; refresh(); } },
    el("option", { value: "" }, `any ${key}`), values.map((v) => el("option", { value: v, selected: state[key] === v }, v)));
  const chosen = new Set();
  const compare = el("button", { onclick: () => { location.href = `/compare?experiments=${[...chosen].join(",")}`; } }, "Compare selected");
  const controls = el("div", { class: "controls" },
    el("input", { type: "search", placeholder: "filter: name, task, model, tag, setting", value: state.q, size: 40,
      oninput: (e) => { state.q = e.target.value; refresh(); } }),
    select("task", choices("task")), select("model", choices("model")),
    select("status", ["queued", "running", "completed", "failed", "crashed", "cancelled"]), select("tag", choices("tags")), compare);
  const holder = el("div");
  root.replaceChildren(el("h1", null, "Experiments"), controls, holder);
  let live = false;
  async function refresh() {
    history.replaceState(null, "", `/?${query(state)}`);
    const rows = await getJSON(`/api/experiments?${query(state)}`);
    live = rows.some((r) => r.running > 0);
    setLive(live);
    compare.disabled = chosen.size < 2;
    const columns = [
      { key: "pick", label: "", render: (r) => el("input", { type: "checkbox", checked: chosen.has(r.ref),
        onchange: (e) => { e.target.checked ? chosen.add(r.ref) : chosen.delete(r.ref); compare.disabled = chosen.size < 2; } }) },
      { key: "id", label: "experiment", sortable: true, render: (r) => expLink(r.ref, `${r.ref} ${r.name || r.hash.slice(0, 12)}`) },
      { key: "task", label: "task", sortable: true },
      { key: "model", label: "model", sortable: true },
      { key: "overrides", label: "settings", render: (r) => Object.entries(r.overrides).map(([k, v]) => `${k}=${fmt(v)}`).join(", ") },
      { key: "tags", label: "tags" },
      { key: "seeds", label: "seeds", sortable: true, num: true },
      { key: "completed", label: "completed", sortable: true, num: true },
      { key: "running", label: "running", sortable: true, num: true, render: (r) => r.running ? el("span", { class: "status-running" }, r.running) : "0" },
      { key: "failed", label: "failed", sortable: true, num: true },
      { key: "best", label: "best score", sortable: true, num: true,
        render: (r) => r.best ? `${r.best.select} ${fmt(r.best.score)} (${r.best.protocol}, ${r.best.run} step ${fmt(r.best.step)})` : el("span", { class: "muted" }, "not evaluated") },
      { key: "created", label: "created", sortable: true, render: (r) => r.created.slice(0, 16).replace("T", " ") },
      { key: "sweep", label: "", render: (r) => el("a", { href: `/compare?task=${enc(r.task)}&model=${enc(r.model)}` }, "sweep") },
    ];
    holder.replaceChildren(rows.length ? table(columns, rows, { sort: state.sort, descending: state.desc,
      onSort: (key) => { state.desc = state.sort === key ? !state.desc : false; state.sort = key; refresh(); } })
      : notice(all.length ? "No experiment matches." : "No experiments yet: train one with", all.length ? null : "neurorl train TASK MODEL"));
  }
  await refresh();
  poll(refresh, () => live);
}

async function runsPage(root) {
  const state = listState();
  const holder = el("div");
  const select = (key, values) => el("select", { onchange: (e) => { state[key] = e.target.value; refresh(); } },
    el("option", { value: "" }, `any ${key}`), values.map((v) => el("option", { value: v, selected: state[key] === v }, v)));
  const all = await getJSON("/api/runs");
  root.replaceChildren(el("h1", null, "Runs"), el("div", { class: "controls" },
    select("task", [...new Set(all.map((r) => r.task))].sort()), select("model", [...new Set(all.map((r) => r.model))].sort()),
    select("status", ["queued", "running", "completed", "failed", "crashed", "cancelled"])), holder);
  let live = false;
  async function refresh() {
    const wanted = { task: state.task, model: state.model, status: state.status, sort: state.sort, desc: state.desc };
    history.replaceState(null, "", `/runs?${query(wanted)}`);
    const rows = await getJSON(`/api/runs?${query(wanted)}`);
    live = rows.some((r) => r.status === "running" || r.status === "queued");
    setLive(live);
    const columns = [
      { key: "id", label: "run", sortable: true, render: (r) => r.ref },
      { key: "experiment", label: "experiment", sortable: true, render: (r) => expLink(r.experiment_ref, `${r.experiment_ref} ${r.experiment_name || ""}`) },
      { key: "task", label: "task", sortable: true }, { key: "model", label: "model", sortable: true },
      { key: "seed", label: "seed", sortable: true, num: true },
      { key: "status", label: "status", sortable: true, render: (r) => [status(r.status), r.outcome ? " (flagged)" : ""] },
      { key: "attempt", label: "attempt", sortable: true, num: true },
      { key: "steps", label: "progress", sortable: true, num: true, render: (r) => `${fmt(r.steps)}/${fmt(r.budget)} ${r.budget_unit}` },
      { key: "error", label: "error" },
    ];
    holder.replaceChildren(table(columns, rows, { sort: state.sort, descending: state.desc,
      onSort: (key) => { state.desc = state.sort === key ? !state.desc : false; state.sort = key; refresh(); } }));
  }
  await refresh();
  poll(refresh, () => live);
}

async function matrixPage(root) {
  let live = false;
  async function refresh() {
    const m = await getJSON("/api/matrix");
    live = m.cells.some((c) => c.running > 0);
    setLive(live);
    if (!m.cells.length) { root.replaceChildren(el("h1", null, "Task x model"), notice("No runs yet:", "neurorl train TASK MODEL")); return; }
    const cell = (task, model) => m.cells.find((c) => c.task === task && c.model === model);
    const head = el("tr", null, el("th", null, "task"), m.models.map((model) => el("th", null, model)));
    const rows = m.tasks.map((task) => el("tr", null, el("th", null, task), m.models.map((model) => {
      const c = cell(task, model);
      if (!c) return el("td");
      return el("td", null,
        el("div", null, `${c.completed} completed / ${c.running} running / ${c.failed} failed (${c.seeds} seeds)`),
        el("div", null, c.best_first ? `best ${c.best_first.select} ${fmt(c.best_first.score)} (${c.best_first.run} step ${fmt(c.best_first.step)})` : el("span", { class: "muted" }, "not evaluated")),
        el("div", null, c.experiment_refs.map((ref) => [expLink(ref), " "]),
          c.experiment_refs.length > 1 ? el("a", { href: `/compare?task=${enc(task)}&model=${enc(model)}` }, "compare") : null));
    })));
    root.replaceChildren(el("h1", null, "Task x model"), el("p", { class: "muted" }, "seeds completed / running / failed and the best evaluation, per cell"),
      el("table", null, el("thead", null, head), el("tbody", null, rows)));
  }
  await refresh();
  poll(refresh, () => live);
}

// ----------------------------------------------------------------------------- one experiment

async function experimentPage(root, ref) {
  let info = await getJSON(`/api/experiment/${enc(ref)}`);
  const shown = new Set(info.default_keys);
  const charts = {};
  const header = el("div"), runs = el("div"), keys = el("div", { class: "keys" }), curves = el("div");
  const evals = el("div"), analyses = el("div", null, el("p", { class: "muted" }, "computing the family's analyses…")), watch = el("div");
  root.replaceChildren(header, el("h2", null, "Runs"), runs, el("h2", null, "Training curves"), keys, curves,
    el("h2", null, "Checkpoint evaluations"), evals, el("h2", null, "Analyses"), analyses, el("h2", null, "The agent at work"), watch);

  function drawHeader() {
    const settings = Object.entries(info.overrides).map(([k, v]) => `${k}=${fmt(v)}`).join(", ");
    header.replaceChildren(
      el("h1", null, `${[info.ref, info.name].filter(Boolean).join(" ")}: ${info.task} / ${info.model}`),
      el("p", null, `hash ${info.hash}`, info.tags.length ? ` · tags ${info.tags.join(", ")}` : "", settings ? ` · ${settings}` : "",
        ` · budget ${fmt(info.budget)} ${info.budget_unit} · `, el("a", { href: `/compare?task=${enc(info.task)}&model=${enc(info.model)}` }, "compare with its sweep")),
      el("details", null, el("summary", null, "config"), el("pre", null, JSON.stringify(info.config, null, 2))));
    runs.replaceChildren(table([
      { key: "ref", label: "run" }, { key: "seed", label: "seed", num: true },
      { key: "status", label: "status", render: (r) => status(r.status) }, { key: "attempt", label: "attempt", num: true },
      { key: "steps", label: "progress", num: true, render: (r) => `${fmt(r.steps)}/${fmt(info.budget)} ${info.budget_unit}` },
      { key: "outcome", label: "outcome" }, { key: "error", label: "error" },
    ], info.runs));
    setLive(info.live);
  }

  function drawKeys() {
    keys.replaceChildren(...(info.keys.length ? info.keys.map((key) => el("label", null,
      el("input", { type: "checkbox", checked: shown.has(key), onchange: (e) => { e.target.checked ? shown.add(key) : shown.delete(key); drawCurves(); } }), " ", key))
      : [el("p", { class: "muted" }, "Nothing logged yet.")]));
  }

  async function drawCurves() {
    for (const key of Object.keys(charts)) {
      if (!shown.has(key)) { Plotly.purge(charts[key]); charts[key].parentNode.remove(); delete charts[key]; }
    }
    for (const key of info.keys.filter((k) => shown.has(k))) {
      if (!charts[key]) {
        charts[key] = el("div", { class: "chart" });
        curves.append(el("div", null, el("h3", null, key), charts[key]));
      }
      const node = charts[key];
      const range = node.dataset.x0 ? `&x0=${node.dataset.x0}&x1=${node.dataset.x1}` : "";
      const data = await getJSON(`/api/experiment/${enc(ref)}/curves?key=${enc(key)}${range}`);
      await drawChart(node, curveTraces(data), info.x_label, key);
      if (!node.dataset.watched) {
        // Zoomed in, the server downsamples only the visible steps (so detail appears);
        // zoomed out again, the whole curve.
        node.dataset.watched = "1";
        node.on("plotly_relayout", (change) => {
          if (change["xaxis.range[0]"] !== undefined) {
            node.dataset.x0 = change["xaxis.range[0]"]; node.dataset.x1 = change["xaxis.range[1]"];
          } else if (change["xaxis.autorange"]) {
            delete node.dataset.x0; delete node.dataset.x1;
          } else return;
          drawCurves();
        });
      }
    }
  }

  async function drawEvaluations() {
    const data = await getJSON(`/api/experiment/${enc(ref)}/evaluations`);
    if (!data.protocols.length) { evals.replaceChildren(notice("No checkpoint has been evaluated yet; evaluate them with", data.command)); return; }
    const existing = evals.querySelectorAll(".chart");
    if (existing.length !== data.protocols.length) evals.replaceChildren();
    data.protocols.forEach((p, i) => {
      let block = evals.children[i];
      if (!block) {
        block = el("div", null, el("h3", null, `protocol ${p.protocol}: ${p.select} (${p.higher_is_better ? "higher" : "lower"} is better)`),
          el("div", { class: "chart" }), el("div", { class: "best" }));
        evals.append(block);
      }
      drawChart(block.querySelector(".chart"), curveTraces(p), "checkpoint step", p.select);
      block.querySelector(".best").replaceChildren(el("p", null, "Best checkpoint of each seed:"), table([
        { key: "seed", label: "seed", num: true }, { key: "run", label: "run" }, { key: "step", label: "step", num: true },
        { key: "score", label: p.select, num: true }], p.best));
    });
  }

  async function drawAnalyses() {
    let data;
    try { data = await getJSON(`/api/experiment/${enc(ref)}/analyses`); } catch (error) { showError(analyses, error); return; }
    const parts = [];
    if (data.evaluate) parts.push(notice("The family's analyses read evaluated checkpoints; evaluate them with", data.evaluate));
    for (const section of data.sections) {
      parts.push(el("h3", null, section.title), section.items.map(item));
    }
    if (data.command) parts.push(notice("Analyses that play a checkpoint are computed by", data.command));
    if (data.stored.length) {
      parts.push(el("h3", null, "Figures stored by an earlier report"));
      for (const s of data.stored) {
        parts.push(el("figure", null, el("img", { src: s.image, alt: s.name, loading: "lazy" }),
          el("figcaption", null, `${s.name} (made by `, command(s.made_by), ")", s.data ? [" ", el("a", { href: s.data }, "csv")] : null)));
      }
    }
    analyses.replaceChildren(...parts.flat(Infinity).filter(Boolean));
  }

  async function drawWatch() {
    const data = await getJSON(`/api/experiment/${enc(ref)}/watch`);
    const parts = [];
    if (data.best) parts.push(el("p", null, `Best checkpoint: ${data.best.run} step ${fmt(data.best.step)}, ${data.best.select} ${fmt(data.best.score)} under ${data.best.protocol}.`));
    if (data.note) parts.push(el("p", { class: "muted" }, data.note));
    if (data.gif) {
      parts.push(el("figure", null, el("img", { src: `/stored/${data.gif.artifact}`, alt: "watch GIF" }),
        el("figcaption", null, data.gif.of_best ? "" : "A GIF of another run: ", "made by ", command(data.gif.made_by))));
    }
    if (data.command) parts.push(notice(data.gif ? "The best checkpoint's own GIF is made by" : "No GIF is stored yet; make one with", data.command));
    watch.replaceChildren(...parts);
  }

  drawHeader(); drawKeys();
  await Promise.all([drawCurves(), drawEvaluations(), drawWatch()]);
  drawAnalyses();
  poll(async () => {
    const next = await getJSON(`/api/experiment/${enc(ref)}`);
    if (next.version === info.version) return;
    const analysesChanged = next.analyses_version !== info.analyses_version;
    const keysChanged = next.keys.join() !== info.keys.join();
    info = next;
    next.default_keys.forEach((k) => { if (keysChanged && !charts[k]) shown.add(k); });
    drawHeader();
    if (keysChanged) drawKeys();
    await drawCurves();
    await drawEvaluations();
    if (analysesChanged) { drawWatch(); drawAnalyses(); }
  }, () => info.live);
}

function item(it) {
  if (it.kind === "text") return el("p", null, it.text);
  if (it.kind === "notice") return notice(it.text, it.command);
  if (it.kind === "table") return dataTable(it);
  if (it.kind === "figure") return figure(it);
  return null;
}

function figure(it) {
  // The family's own drawing, and its data drawn interactively: x, y and a grouping column.
  const parts = [el("img", { src: it.image, alt: it.caption, loading: "lazy" }), el("figcaption", null, it.caption)];
  if (it.data && it.data.rows.length) {
    const cols = it.data.columns;
    const numeric = cols.filter((_, i) => it.data.rows.some((r) => typeof r[i] === "number"));
    const group0 = cols.includes("seed") ? "seed" : "";
    const x0 = numeric.find((c) => c !== group0) || cols[0];
    const y0 = numeric.find((c) => c !== group0 && c !== x0) || x0;
    const chart = el("div", { class: "chart" });
    const pick = (label, value, options) => el("label", null, `${label} `, el("select", { onchange: draw },
      options.map((c) => el("option", { value: c, selected: c === value }, c || "(none)"))));
    const xs = pick("x", x0, cols), ys = pick("y", y0, numeric), gs = pick("group", group0, ["", ...cols]);
    function draw() {
      const [x, y, g] = [xs, ys, gs].map((l) => l.querySelector("select").value);
      const ix = cols.indexOf(x), iy = cols.indexOf(y), ig = cols.indexOf(g);
      const groups = new Map();
      for (const row of it.data.rows) {
        const key = ig >= 0 ? String(row[ig]) : y;
        if (!groups.has(key)) groups.set(key, { x: [], y: [] });
        groups.get(key).x.push(row[ix]); groups.get(key).y.push(row[iy]);
      }
      const traces = [...groups.entries()].map(([name, d], i) => ({ ...d, name: ig >= 0 ? `${g} ${name}` : name, uid: name,
        mode: d.x.length < 60 ? "lines+markers" : "lines", line: { color: COLORS[i % COLORS.length] } }));
      drawChart(chart, traces, x, y);
    }
    const details = el("details", { ontoggle: (e) => { if (e.target.open) draw(); } },
      el("summary", null, `chart the data (${it.data.total_rows} rows)`), el("div", { class: "controls" }, xs, ys, gs), chart);
    parts.push(details);
  }
  return el("figure", null, parts);
}

// ----------------------------------------------------------------------------- compare

async function comparePage(root) {
  const params = new URLSearchParams(location.search);
  const state = { experiments: params.get("experiments") || "", task: params.get("task") || "", model: params.get("model") || "",
    key: params.get("key") || "", group_by: params.get("group_by") };
  if (!state.experiments && !(state.task && state.model)) {
    root.replaceChildren(el("h1", null, "Compare"), notice("Choose experiments on the experiments page (tick them, then Compare selected), or open a sweep from the task x model matrix."));
    return;
  }
  const controls = el("div", { class: "controls" }), chart = el("div", { class: "chart" }), list = el("div");
  root.replaceChildren(el("h1", null, "Compare"), controls, chart, el("h2", null, "Experiments"), list);
  async function refresh(redrawControls) {
    const wanted = new URLSearchParams();
    for (const k of ["experiments", "task", "model", "key"]) if (state[k]) wanted.set(k, state[k]);
    if (state.group_by !== null) wanted.set("group_by", state.group_by);
    history.replaceState(null, "", `/compare?${wanted}`);
    const data = await getJSON(`/api/compare?${wanted}`);
    state.key = data.key;
    if (redrawControls) {
      const grouped = new Set(data.group_by);
      controls.replaceChildren(
        el("label", null, "metric ", el("select", { onchange: (e) => { state.key = e.target.value; refresh(false); } },
          data.keys.map((k) => el("option", { value: k, selected: k === data.key }, k)))),
        el("span", null, data.differing.length ? "group by: " : "the configs do not differ"),
        ...data.differing.map((k) => el("label", null, el("input", { type: "checkbox", checked: grouped.has(k), onchange: (e) => {
          e.target.checked ? grouped.add(k) : grouped.delete(k);
          state.group_by = [...grouped].join(","); refresh(false);
        } }), ` ${k}`)));
    }
    const traces = [];
    data.groups.forEach((g, i) => {
      const color = COLORS[i % COLORS.length];
      const s = g.summary;
      if (!s) return;
      traces.push({ x: s.x, y: s.low, mode: "lines", line: { width: 0, color }, showlegend: false, hoverinfo: "skip", legendgroup: g.label, uid: `${g.label}-low` });
      traces.push({ x: s.x, y: s.high, mode: "lines", line: { width: 0, color }, fill: "tonexty", fillcolor: color + "33", showlegend: false, hoverinfo: "skip", legendgroup: g.label, uid: `${g.label}-high` });
      traces.push({ x: s.x, y: s.mean, customdata: s.n, mode: "lines", line: { width: 2, color }, legendgroup: g.label, uid: g.label,
        name: `${g.label} (${g.experiments.join(", ")}; ${g.seeds} seeds)`, hovertemplate: "%{y:.4g} (n=%{customdata})" });
    });
    await drawChart(chart, traces, "step", `${data.key}: mean and 95% interval over seeds`);
    list.replaceChildren(table([
      { key: "ref", label: "experiment", render: (r) => expLink(r.ref, `${r.ref} ${r.name || ""}`) },
      { key: "task", label: "task" }, { key: "model", label: "model" },
      ...data.differing.map((k) => ({ key: k, label: k, render: (r) => fmt(r.settings[k]) })),
      { key: "seeds", label: "seeds", num: true },
      { key: "best", label: "best score", render: (r) => r.best ? `${r.best.select} ${fmt(r.best.score)} (${r.best.protocol}, ${r.best.run})` : "not evaluated" },
    ], data.experiments));
  }
  await refresh(true);
  poll(() => refresh(false), () => false);
}

// ----------------------------------------------------------------------------- start

const PAGES = { experiments: experimentsPage, runs: runsPage, matrix: matrixPage, experiment: experimentPage, compare: comparePage };

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("app");
  PAGES[root.dataset.page](root, root.dataset.ref).catch((error) => showError(root, error));
});

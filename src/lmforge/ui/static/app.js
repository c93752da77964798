"use strict";
// lmforge ui: forms rendered from /api/forms (the config schema), jobs followed over server-sent events.

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
};
let FORMS = null;

function showMessage(text, kind = "error") {
  const box = $("#message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

async function api(path, body) {
  const init = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  let response;
  try { response = await fetch(path, init); } catch (e) { throw new Error("the UI server is not reachable: " + e.message); }
  const data = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
  if (!response.ok || data.error) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// ---- forms -------------------------------------------------------------------------------------------------
function renderForm(formName, spec, container) {
  for (const section of spec.sections) {
    const box = el("details", {open: section.open, "data-section": section.name});
    box.append(el("summary", {text: section.title}));
    for (const f of section.fields) {
      const attrs = {"data-form": formName, "data-section": section.name, "data-key": f.key, name: f.key};
      let input;
      if (f.kind === "bool") {
        input = el("input", {...attrs, type: "checkbox", checked: f.default === true});
      } else if (f.kind === "select") {
        input = el("select", attrs);
        for (const c of f.choices) input.append(el("option", {value: String(c), text: String(c), selected: c === f.default}));
      } else if (f.kind === "yaml") {
        const value = (f.default === null || (Array.isArray(f.default) && !f.default.length) || (typeof f.default === "object" && !Object.keys(f.default).length)) ? "" : JSON.stringify(f.default);
        input = el("input", {...attrs, value, placeholder: "YAML, e.g. [a, b] or {k: v}"});
      } else {
        const value = f.default === null || f.default === undefined ? "" : String(f.default);
        input = el("input", {...attrs, type: "text", value, placeholder: f.default === null ? "default: " + f.default_text : ""});
      }
      const row = el("label", {class: "field"}, el("span", {text: f.key}), input);
      row.append(el("small", {text: f.help}));
      box.append(row);
    }
    container.append(box);
  }
  if (formName === "train") {
    const box = el("details", {"data-section": "train_extra"}, el("summary", {text: "More train keys"}));
    box.append(el("label", {class: "field"}, el("span", {text: "YAML"}),
      el("textarea", {"data-form": "train", "data-key": "train_extra", rows: 3, placeholder: "any TrainingArguments keys, e.g. {optim: adamw_torch, optim: adamw_torch}"})));
    container.append(box);
  }
}

function formValues(formName) {
  const values = {};
  for (const input of document.querySelectorAll(`[data-form="${formName}"]`)) {
    if (input.dataset.key === "train_extra") { values.train_extra = input.value; continue; }
    const section = input.dataset.section;
    values[section] = values[section] || {};
    values[section][input.dataset.key] = input.type === "checkbox" ? input.checked : input.value;
  }
  return values;
}

function renderPaths(paths) {
  if (!paths || !paths.length) return el("div");
  const table = el("table", {class: "paths"}, el("tr", {}, el("th", {text: "path"}), el("th", {text: "resolved to"}), el("th", {text: ""})));
  for (const p of paths) {
    const state = p.exists === null ? "hub id" : p.exists ? "exists" : "does not exist (yet)";
    table.append(el("tr", {}, el("td", {text: p.key}), el("td", {text: p.resolved}), el("td", {text: state})));
  }
  return table;
}

function renderPreview(formName, data) {
  const box = $(`#preview-${formName}`);
  box.replaceChildren(el("div", {class: "cmd"}, el("code", {text: data.command})));
  box.append(renderPaths(data.paths));
  if (data.yaml) box.append(el("pre", {class: "yaml", text: data.yaml}));
}

async function preview(formName) {
  showMessage("");
  try { const data = await api(`/api/${formName}/preview`, formValues(formName)); renderPreview(formName, data); return data; }
  catch (e) { showMessage(e.message); return null; }
}

async function copyCommand(formName) {
  const data = await preview(formName);
  if (!data) return;
  try { await navigator.clipboard.writeText(data.command); showMessage("command copied: " + data.command, "info"); }
  catch (e) { showMessage("copy it from the box: " + data.command, "info"); }
}

async function start(formName) {
  showMessage("");
  try {
    const data = await api(`/api/${formName}/start`, formValues(formName));
    renderPreview(formName, data);
    follow(data.job.id, formName);
  } catch (e) { showMessage(e.message); }
}

// ---- jobs ----------------------------------------------------------------------------------------------------
let source = null;
let current = null;

function fmtTime(seconds) {
  if (!isFinite(seconds) || seconds < 0) return "–";
  seconds = Math.round(seconds);
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return (h ? h + ":" : "") + String(m).padStart(h ? 2 : 1, "0") + ":" + String(s).padStart(2, "0");
}

function follow(jobId, formName = "train") {
  if (source) source.close();
  current = {id: jobId, kind: formName, records: [], log: [], job: null};
  if (formName === "train") {
    $("#job-panel").hidden = false;
    $("#job-log").textContent = "";
  }
  source = new EventSource(`/api/jobs/${encodeURIComponent(jobId)}/events`);
  source.addEventListener("update", (event) => onUpdate(JSON.parse(event.data)));
  source.addEventListener("end", (event) => { onUpdate({...JSON.parse(event.data), records: [], log: []}); source.close(); onEnd(); });
  source.onerror = () => { if (current && current.job && current.job.state !== "running") source.close(); };
}

function onUpdate(data) {
  if (data.reset) {  // the run's log restarts; mark it unless this is the first update of the page's follow
    current.records = [];
    if (current.job) current.log = current.log.concat(["— new attempt —"]);
  }
  current.job = data.job;
  current.records.push(...data.records);
  current.log.push(...data.log);
  if (current.log.length > 400) current.log = current.log.slice(-400);
  if (current.kind === "train") renderTrainJob(data.now);
  else renderSideJob(current.kind);
}

async function onEnd() {
  if (current.kind !== "train") {
    try { const results = await api(`/api/jobs/${encodeURIComponent(current.id)}/results`); renderSideJob(current.kind, results); }
    catch (e) { showMessage(e.message); }
  }
  loadRuns();
}

function lossPoints(records) {
  const byStep = new Map();
  for (const r of records) if (typeof r.loss === "number" && isFinite(r.loss)) byStep.set(r.step, r.loss);
  return [...byStep.entries()].sort((a, b) => a[0] - b[0]);
}

function progressOf(records, job, now) {
  const steps = records.filter((r) => typeof r.step === "number");
  const last = steps[steps.length - 1];
  const elapsed = job && job.started ? (job.ended || now) - job.started : 0;
  if (!last) return {step: 0, total: null, elapsed, eta: NaN};
  let first = steps[0];  // the first record of the current process (elapsed restarts on resume)
  for (let i = 1; i < steps.length; i++) if (steps[i].elapsed < steps[i - 1].elapsed) first = steps[i];
  const startStep = first.step - 1, done = last.step - startStep;
  const total = last.max_steps || null;
  const eta = total && done > 0 ? (last.elapsed / done) * (total - last.step) : NaN;
  return {step: last.step, total, elapsed, eta};
}

/** The state badge, then the status detail when there is one (the detail never repeats the state). */
function stateLine(job) {
  const badge = el("span", {class: "state " + job.state, text: job.state});
  return job.message ? [badge, " " + job.message] : [badge];
}

function renderTrainJob(now) {
  const job = current.job;
  $("#job-title").textContent = job.id;
  $("#job-state").replaceChildren(...stateLine(job), el("div", {class: "cmd-line", text: job.command}));
  const p = progressOf(current.records, job, now);
  const finished = job.state === "finished";
  const eta = job.state === "running" ? fmtTime(p.eta) : "–";
  $("#job-progress").textContent = `step ${p.step}/${p.total ?? "?"} · elapsed ${fmtTime(p.elapsed)} · ETA ${eta}`;
  $("#job-bar").style.width = (finished ? 100 : p.total ? (100 * p.step) / p.total : 0) + "%";
  $("#job-abort").disabled = job.state !== "running";
  $("#job-resume").disabled = !job.resumable;
  drawPlot($("#loss-plot"), [{name: job.id, points: lossPoints(current.records)}]);
  const log = $("#job-log");
  log.textContent = current.log.join("\n");
  log.scrollTop = log.scrollHeight;
}

function renderSideJob(kind, results) {
  const box = $(kind === "eval" ? "#eval-job" : "#export-job");
  const job = current.job;
  box.replaceChildren(el("div", {}, ...stateLine(job)));
  if (results && results.data) box.append(resultsTable(results.data), el("div", {class: "note", text: results.file}));
  box.append(el("pre", {class: "log", text: current.log.slice(-60).join("\n")}));
}

function flatten(data, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(data)) {
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, prefix + k + ".", out);
    else out[prefix + k] = Array.isArray(v) ? JSON.stringify(v) : v;
  }
  return out;
}

const RESULT_KEYS = ["metrics", "datasets", "verification"];  // eval_results.json / lmforge_export.json: the numbers

function resultsTable(data) {
  const table = el("table", {class: "results"});
  const shown = RESULT_KEYS.some((k) => k in data) ? Object.fromEntries(RESULT_KEYS.filter((k) => k in data).map((k) => [k, data[k]])) : data;
  for (const [k, v] of Object.entries(flatten(shown))) {
    table.append(el("tr", {}, el("td", {text: k}), el("td", {text: typeof v === "number" ? String(+v.toPrecision(6)) : String(v)})));
  }
  return table;
}

// ---- plots ---------------------------------------------------------------------------------------------------
const COLOURS = ["#1f6fb2", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#5c940d"];

function niceTicks(lo, hi, count) {
  if (hi === lo) { hi = lo + 1; lo = lo - 1; }
  const raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) ticks.push(+t.toPrecision(10));
  return ticks;
}

function drawPlot(svg, series) {
  const W = 560, H = 300, L = 62, R = 16, T = 16, B = 46;
  const ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  svg.replaceChildren();
  const all = series.flatMap((s) => s.points);
  node("text", {x: L + (W - L - R) / 2, y: H - 8, "text-anchor": "middle", class: "axis-label"}, "step");
  node("text", {x: 16, y: T + (H - T - B) / 2, "text-anchor": "middle", class: "axis-label", transform: `rotate(-90 16 ${T + (H - T - B) / 2})`}, "loss");
  node("rect", {x: L, y: T, width: W - L - R, height: H - T - B, class: "frame"});
  if (!all.length) {
    node("text", {x: L + (W - L - R) / 2, y: T + (H - T - B) / 2, "text-anchor": "middle", class: "empty"}, "no loss logged yet");
    return;
  }
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
  if (x0 === x1) { x0 -= 1; x1 += 1; }  // one point: still a readable axis around it
  const pad = (y1 - y0) * 0.08 || Math.abs(y0) * 0.05 || 1;
  y0 -= pad; y1 += pad;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  for (const t of niceTicks(x0, x1, 6).filter((t) => Number.isInteger(t) && t >= x0 && t <= x1)) {
    node("line", {x1: sx(t), x2: sx(t), y1: H - B, y2: H - B + 5, class: "tick"});
    node("text", {x: sx(t), y: H - B + 18, "text-anchor": "middle", class: "tick-label"}, String(t));
  }
  for (const t of niceTicks(y0, y1, 5).filter((t) => t >= y0 && t <= y1)) {
    node("line", {x1: L, x2: W - R, y1: sy(t), y2: sy(t), class: "grid"});
    node("text", {x: L - 6, y: sy(t) + 4, "text-anchor": "end", class: "tick-label"}, String(+t.toPrecision(4)));
  }
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    if (s.points.length > 1) node("polyline", {points: s.points.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" "), fill: "none", stroke: colour, "stroke-width": 2});
    if (s.points.length <= 200) for (const p of s.points) node("circle", {cx: sx(p[0]), cy: sy(p[1]), r: 3.5, fill: colour, class: "point"}).append(document.createElementNS(ns, "title"));
    if (series.length > 1) node("text", {x: W - R - 6, y: T + 16 + 16 * i, "text-anchor": "end", fill: colour, class: "legend"}, s.name);
  });
}

// ---- runs ----------------------------------------------------------------------------------------------------
const compared = new Set();

let runsRequest = 0;  // only the newest listing renders: two in flight would rebuild the table twice

async function loadRuns() {
  const mine = ++runsRequest;
  let jobs;
  try { jobs = await api("/api/jobs"); } catch (e) { showMessage(e.message); return; }
  if (mine !== runsRequest) return;
  const table = $("#runs-table");
  table.replaceChildren(el("tr", {}, ...["", "job", "state", "attempt", "started", "command", ""].map((h) => el("th", {text: h}))));
  for (const job of jobs) {
    const tick = el("input", {type: "checkbox", checked: compared.has(job.id), disabled: job.kind !== "train"});
    tick.addEventListener("change", () => { tick.checked ? compared.add(job.id) : compared.delete(job.id); compare(); });
    const open = el("button", {text: "Open"});
    open.addEventListener("click", () => { selectTab(job.kind === "eval" ? "eval" : job.kind === "export" ? "export" : "train"); follow(job.id, job.kind); });
    const started = job.started ? new Date(job.started * 1000).toLocaleString() : "";
    table.append(el("tr", {}, el("td", {}, tick), el("td", {text: job.id}), el("td", {}, el("span", {class: "state " + job.state, text: job.state})),
      el("td", {text: String(job.attempt)}), el("td", {text: started}), el("td", {}, el("code", {text: job.command})), el("td", {}, open)));
  }
}

async function compare() {
  const series = [], rows = [];
  for (const id of compared) {
    try {
      const data = await api(`/api/jobs/${encodeURIComponent(id)}/records`);
      series.push({name: id, points: lossPoints(data.records)});
      const last = [...data.records].reverse();
      const pick = (key) => (last.find((r) => typeof r[key] === "number") || {})[key];
      rows.push([id, pick("step"), pick("loss"), pick("train_loss"), pick("eval_loss"), pick("train_runtime")]);
    } catch (e) { showMessage(e.message); }
  }
  drawPlot($("#compare-plot"), series);
  const table = $("#compare-table");
  table.replaceChildren(el("tr", {}, ...["run", "step", "last loss", "train_loss", "eval_loss", "runtime s"].map((h) => el("th", {text: h}))));
  for (const row of rows) table.append(el("tr", {}, ...row.map((v) => el("td", {text: v === undefined ? "–" : typeof v === "number" ? String(+v.toPrecision(5)) : v}))));
}

// ---- data preview ----------------------------------------------------------------------------------------------
async function dataPreview() {
  showMessage("");
  $("#data-output").textContent = "encoding…";
  try {
    const data = await api("/api/data/examples", {values: formValues("train"), n: +$("#data-n").value || 3});
    $("#data-paths").replaceChildren(el("div", {class: "cmd"}, el("code", {text: data.command})), renderPaths(data.paths));
    const out = $("#data-output");
    out.replaceChildren();
    for (const [i, part] of data.output.replaceAll("(«» marks trained text)", "(highlighted: trained text)").split(/[«»]/).entries()) out.append(i % 2 ? el("mark", {text: part}) : part);
    if (data.error) showMessage(data.error);
  } catch (e) { $("#data-output").textContent = ""; showMessage(e.message); }
}

function trainField(section, key) {
  return document.querySelector(`[data-form="train"][data-section="${section}"][data-key="${key}"]`);
}

async function listCatalog() {
  showMessage("");
  try {
    const data = await api("/api/data/catalog", {catalog: trainField("data", "catalog").value, dataset_dir: trainField("data", "dataset_dir").value});
    const box = $("#catalog");
    box.replaceChildren(renderPaths(data.paths), el("p", {class: "note", text: "Use adds the dataset to the Train form's data.datasets."}));
    const table = el("table", {class: "catalog"});
    data.names.forEach((name, i) => {
      const use = el("button", {text: "Use"});
      use.addEventListener("click", () => {
        const field = trainField("data", "datasets");
        let current = [];
        try { current = field.value.trim() ? JSON.parse(field.value) : []; } catch (e) { current = [field.value]; }
        if (!current.includes(name)) current.push(name);
        field.value = JSON.stringify(current);
        showMessage("data.datasets = " + field.value, "info");
      });
      table.append(el("tr", {}, el("td", {}, use), el("td", {}, el("code", {text: data.listing[i]}))));
    });
    box.append(table);
  } catch (e) { showMessage(e.message); }
}

// ---- chat ------------------------------------------------------------------------------------------------------
let conversation = [];

function chatBubble(role, text) {
  const bubble = el("div", {class: "bubble " + role}, el("b", {text: role}), el("span", {text}));
  $("#chat-log").append(bubble);
  return bubble.querySelector("span");
}

async function chatLoad() {
  showMessage("");
  $("#chat-loaded").textContent = "loading…";
  try {
    const data = await api("/api/chat/load", {model: $("#chat-model").value, adapter: $("#chat-adapter").value, template: $("#chat-template").value});
    $("#chat-loaded").replaceChildren(el("div", {text: "loaded: " + data.loaded.model + (data.loaded.adapter ? " + " + data.loaded.adapter : "")}), renderPaths(data.paths));
  } catch (e) { $("#chat-loaded").textContent = ""; showMessage(e.message); }
}

async function chatSend() {
  const text = $("#chat-text").value.trim();
  if (!text) return;
  showMessage("");
  conversation.push({role: "user", content: text});
  chatBubble("user", text);
  $("#chat-text").value = "";
  const span = chatBubble("assistant", "");
  span.parentElement.classList.add("streaming");
  const options = formValues("chat").options || {};
  try {
    const response = await fetch("/api/chat/send", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({messages: conversation, system: $("#chat-system").value, options})});
    if (!response.ok) { const data = await response.json().catch(() => ({})); throw new Error(data.error || `HTTP ${response.status}`); }
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "", reply = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        const event = (block.match(/^event: (.*)$/m) || [])[1], data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "{}");
        if (event === "piece") { reply += data.text; span.textContent = reply; span.dataset.pieces = (+span.dataset.pieces || 0) + 1; }
        if (event === "failed") throw new Error(data.error);
      }
    }
    conversation.push({role: "assistant", content: reply});
    span.parentElement.classList.add("done");
  } catch (e) { conversation.pop(); showMessage(e.message); }
  span.parentElement.classList.remove("streaming");
}

// ---- wiring ----------------------------------------------------------------------------------------------------
function selectTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== "tab-" + name;
  if (name === "runs") loadRuns();
}

async function init() {
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => selectTab(b.dataset.tab));
  for (const b of document.querySelectorAll("[data-preview]")) b.addEventListener("click", () => preview(b.dataset.preview));
  for (const b of document.querySelectorAll("[data-copy]")) b.addEventListener("click", () => copyCommand(b.dataset.copy));
  for (const b of document.querySelectorAll("[data-start]")) b.addEventListener("click", () => start(b.dataset.start));
  $("#job-abort").addEventListener("click", async () => { try { await api(`/api/jobs/${encodeURIComponent(current.id)}/abort`, {}); } catch (e) { showMessage(e.message); } });
  $("#job-resume").addEventListener("click", async () => { try { const job = await api(`/api/jobs/${encodeURIComponent(current.id)}/resume`, {}); follow(job.id, "train"); } catch (e) { showMessage(e.message); } });
  $("#data-run").addEventListener("click", dataPreview);
  $("#catalog-run").addEventListener("click", listCatalog);
  $("#chat-load").addEventListener("click", chatLoad);
  $("#chat-send").addEventListener("click", chatSend);
  $("#chat-clear").addEventListener("click", () => { conversation = []; $("#chat-log").replaceChildren(); });
  $("#chat-text").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); chatSend(); } });
  try { FORMS = await api("/api/forms"); } catch (e) { showMessage(e.message); return; }
  $("#where").textContent = "jobs: " + FORMS.jobs_dir;
  for (const name of ["train", "eval", "export", "chat"]) renderForm(name, FORMS[name], $("#form-" + name));
  drawPlot($("#loss-plot"), []);
  const jobs = await api("/api/jobs").catch(() => []);
  const running = jobs.find((j) => j.kind === "train" && j.state === "running");
  if (running) follow(running.id, "train");  // re-attach after a reload or a UI restart
  document.body.dataset.ready = "1";
}

init();

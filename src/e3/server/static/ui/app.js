// The e3 web view: repositories, workspaces, and a workspace's dataflow as a live graph.
//
// Plain JavaScript, no build step and no third-party code. Every request carries the
// bearer token the user pasted (kept in sessionStorage, this tab only); a run's events
// are read as server-sent events through fetch() and a stream reader, because
// EventSource cannot send an Authorization header. All text from the server is put in
// the page with textContent, never parsed as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const STATES = ["uptodate", "stale", "waiting", "running", "failed", "cached", "skipped"];
const STATUS_TO_STATE = {
  "up-to-date": "uptodate", ready: "stale", waiting: "waiting", "in-progress": "running",
  "stale-running": "stale", failed: "failed", error: "failed",
};
const LABELS = {
  uptodate: "up to date", stale: "stale", waiting: "waiting", running: "running",
  failed: "failed", cached: "cached", skipped: "skipped",
};
const EVENT_TO_STATE = {
  task_started: "running", task_completed: "uptodate", task_cached: "cached",
  task_failed: "failed", task_skipped: "skipped", task_waiting: "waiting",
  task_invalidated: "stale",
};

// What tests and benchmarks read: when the graph was drawn, when each event arrived.
const probe = (window.e3view = { events: [], graphDrawn: null, graphNodes: 0 });

let token = sessionStorage.getItem("e3.token") || "";
let view = null; // the page shown now; its fetches stop when another replaces it

class AuthNeeded extends Error {}
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// ── small helpers ──────────────────────────────────────────────────────────

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

const enc = encodeURIComponent;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function ms(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

async function api(path, opts) {
  opts = opts || {};
  const res = await fetch(path, {
    method: opts.method || "GET",
    headers: headers(opts.body !== undefined ? { "Content-Type": "application/json" } : {}),
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    signal: opts.signal,
    cache: "no-store",
  });
  if (res.status === 401) {
    showLogin(token ? "That token was refused (expired, or for another server)." : "");
    throw new AuthNeeded();
  }
  const type = res.headers.get("content-type") || "";
  const body = type.startsWith("application/json") ? await res.json() : null;
  if (!res.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${res.status}`;
    throw new ApiError(res.status, message);
  }
  return body;
}

function showLogin(message) {
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("token").focus();
}

document.getElementById("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("e3.token", token);
  document.getElementById("login").hidden = true;
  route();
});

function crumbs(parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren();
  parts.forEach(([label, href], i) => {
    if (i) nav.append(el("span", { class: "sep" }, "/"));
    nav.append(href ? el("a", { href }, label) : el("span", {}, label));
  });
}

function page(...children) {
  const main = document.getElementById("main");
  main.replaceChildren(...children);
  return main;
}

function failed(err) {
  if (err instanceof AuthNeeded || (err && err.name === "AbortError")) return;
  page(el("div", { class: "page" }, el("p", { class: "error" }, String(err.message || err))));
}

// ── routing ────────────────────────────────────────────────────────────────

function route() {
  if (view) view.abort.abort();
  view = { abort: new AbortController() };
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "repos" && parts[1] && parts[2] === "ws" && parts[3]) {
    showWorkspace(parts[1], parts[3]).catch(failed);
  } else if (parts[0] === "repos" && parts[1]) {
    showRepo(parts[1]).catch(failed);
  } else {
    showRepos().catch(failed);
  }
}
window.addEventListener("hashchange", route);

async function showRepos() {
  crumbs([["repositories", null]]);
  const repos = await api("/ui/api/repos", { signal: view.abort.signal });
  if (repos.length === 1) {
    location.replace(`#/repos/${enc(repos[0])}`);
    return;
  }
  const list = el("ul", { class: "cards" });
  for (const r of repos) list.append(el("li", {}, el("a", { href: `#/repos/${enc(r)}` }, r)));
  page(el("div", { class: "page" }, el("h2", {}, "Repositories"),
    repos.length ? list : el("p", { class: "muted" }, "No repositories.")));
}

async function showRepo(repo) {
  crumbs([["repositories", "#/"], [repo, null]]);
  const spaces = await api(`/ui/api/repos/${enc(repo)}/workspaces`, { signal: view.abort.signal });
  const list = el("ul", { class: "cards" });
  for (const w of spaces) {
    list.append(el("li", {}, el("a", { href: `#/repos/${enc(repo)}/ws/${enc(w.name)}` },
      el("div", {}, w.name), el("div", { class: "sub" }, w.package || "not deployed"))));
  }
  page(el("div", { class: "page" }, el("h2", {}, `Workspaces of ${repo}`),
    spaces.length ? list : el("p", { class: "muted" }, "No workspaces yet.")));
}

// ── a workspace ────────────────────────────────────────────────────────────

async function showWorkspace(repo, ws) {
  crumbs([["repositories", "#/"], [repo, `#/repos/${enc(repo)}`], [ws, null]]);
  const v = Object.assign(view, {
    repo, ws, base: `/ui/api/repos/${enc(repo)}/workspaces/${enc(ws)}`,
    nodes: new Map(), status: null, runStates: {}, live: false, followed: null,
    counts: null, selected: null, tab: "task",
  });
  const startBtn = el("button", { class: "primary", id: "start", onclick: () => start(v, false) }, "Start");
  const forceBtn = el("button", { id: "force", onclick: () => start(v, true) }, "Start (force)");
  const cancelBtn = el("button", { id: "cancel", disabled: "", onclick: () => cancel(v) }, "Cancel");
  const fitBtn = el("button", { id: "fit", onclick: () => fit(v) }, "Fit");
  v.runline = el("span", { class: "runline", id: "runline" });
  v.title = el("h1", {}, ws);
  v.buttons = { startBtn, forceBtn, cancelBtn };
  const legend = el("div", { class: "legend" },
    ...["uptodate:up to date", "stale:stale", "waiting:waiting", "running:running",
      "failed:failed", "cached:cached"].map((s) => {
      const [cls, label] = s.split(":");
      return el("span", { class: cls }, label);
    }));
  v.svg = svg("svg", { id: "graph", role: "img", "aria-label": "dataflow graph" });
  v.sidebody = el("div", { class: "sidebody", id: "side" });
  v.tabs = {
    task: el("button", { onclick: () => showTab(v, "task") }, "Task"),
    runs: el("button", { id: "runs-tab", onclick: () => showTab(v, "runs") }, "Runs"),
  };
  page(
    el("div", { class: "toolbar" }, v.title, startBtn, forceBtn, cancelBtn, fitBtn, v.runline, legend),
    el("div", { class: "workspace" },
      el("div", { class: "canvas" }, v.svg),
      el("aside", { class: "side" }, el("div", { class: "tabs" }, v.tabs.task, v.tabs.runs), v.sidebody)),
  );
  showTab(v, "task");
  // The graph first, drawn as soon as it arrives; then the states, which take longer to
  // compute: asked for once the graph is painted, the server works them out while the
  // page can be looked at, not while the browser is still drawing on the same machine.
  const graph = await api(`${v.base}/graph`, { signal: v.abort.signal });
  probe.graphFetched = performance.now();
  await drawGraph(v, graph);
  const status = await api(`${v.base}/status`, { signal: v.abort.signal });
  v.title.textContent = `${ws} · ${status.package}`;
  applyStatus(v, status);
  probe.statusShown = performance.now();
  history(v).catch(failed);
}

function showTab(v, tab) {
  v.tab = tab;
  for (const [name, b] of Object.entries(v.tabs)) b.classList.toggle("on", name === tab);
  if (tab === "runs") renderRuns(v);
  else if (v.selected) openTask(v, v.selected);
  else v.sidebody.replaceChildren(el("p", { class: "muted" }, "Click a task to see its execution, logs and values."));
}

// ── the graph ──────────────────────────────────────────────────────────────

function curve(points) {
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let i = 1; i < points.length; i++) {
    const [x1, y1] = points[i - 1];
    const [x2, y2] = points[i];
    const dx = (x2 - x1) / 2;
    d += ` C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
  }
  return d;
}

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
// Arrowheads: every edge ends going right (its last curve leaves its control point level).
const ARROW_LONG = 9, ARROW_HALF = 4.5;

// The graph as SVG markup, parsed once, with as few elements as it can: all edges are one
// path and all arrowheads another, each node is one <rect> (its state, name and class on
// it), and the labels are a layer of their own, built only once they are big enough to
// read. Thousands of nodes then cost a few thousand elements, not five per node and one
// per edge. Every piece of server text in it goes through esc().
function drawGraph(v, g) {
  v.graph = g;
  // The canvas is measured before the drawing is in it: measuring after would lay out
  // every element twice (once with the labels, once without).
  v.rect = v.svg.getBoundingClientRect();
  const edges = [], arrows = [];
  for (const e of g.edges) {
    edges.push(curve(e.p));
    const [x, y] = e.p[e.p.length - 1];
    arrows.push(`M${x - ARROW_LONG},${y - ARROW_HALF}L${x},${y}L${x - ARROW_LONG},${y + ARROW_HALF}z`);
  }
  const parts = [`<path class="edge" d="${edges.join("")}"/><path class="arrow" d="${arrows.join("")}"/><g>`];
  for (const n of g.nodes) {
    const kind = n.kind === "task" ? "task" : "dataset";
    parts.push(`<rect class="node ${kind}" x="${n.x}" y="${n.y}" width="${n.w}" height="${n.h}"`,
      ` rx="${kind === "task" ? 6 : n.h / 2}" data-state="waiting" data-id="${esc(n.id)}"`,
      ` data-${kind}="${esc(n.name)}"/>`);
  }
  parts.push('</g><g class="labels"></g>');
  fit(v, false);
  v.svg.innerHTML = parts.join("");
  v.labels = v.svg.lastChild;
  v.labelled = false;
  const shapes = v.svg.children[2].children;
  g.nodes.forEach((n, i) => v.nodes.set(n.id, { node: n, el: shapes[i] }));
  showBox(v);
  v.svg.addEventListener("click", (ev) => {
    const shape = ev.target.closest && ev.target.closest(".node.task");
    if (shape) select(v, shape.getAttribute("data-task"));
  });
  // A node's full name as a tooltip, made when the pointer first comes over it.
  v.svg.addEventListener("mouseover", (ev) => {
    const shape = ev.target;
    if (!shape.classList.contains("node") || shape.firstChild) return;
    const item = v.nodes.get(shape.getAttribute("data-id"));
    if (!item) return;
    const title = svg("title", {});
    title.textContent = `${item.node.kind} ${item.node.name}`;
    shape.append(title);
  });
  v.producer = {};
  for (const e of g.edges) if (e.s.startsWith("t:")) v.producer[e.t] = e.s;
  panZoom(v);
  probe.graphNodes = g.nodes.length;
  // Drawn means painted: the first frame after the SVG is in the document.
  return new Promise((painted) => requestAnimationFrame(() => setTimeout(() => {
    probe.graphDrawn = performance.now();
    v.svg.setAttribute("data-ready", "1");
    painted();
  }, 0)));
}

// Each node's name, shortened to fit its box.
function drawLabels(v) {
  const parts = [];
  for (const n of v.graph.nodes) {
    const task = n.kind === "task";
    const max = Math.max(3, Math.floor((n.w - 14) / (task ? 7.2 : 6.3)));
    const label = n.label.length > max ? `${n.label.slice(0, max - 1)}…` : n.label;
    parts.push(`<text${task ? "" : ' class="dataset"'} x="${n.x + n.w / 2}" y="${n.y + n.h / 2}">`,
      `${esc(label)}</text>`);
  }
  v.labels.innerHTML = parts.join("");
  v.labelled = true;
}

function fit(v, show = true) {
  const g = v.graph;
  if (!g) return;
  // The whole graph, centred, magnified at most 1.25 times (a small graph stays small).
  if (show) v.rect = v.svg.getBoundingClientRect();
  const r = v.rect;
  const cw = r.width || 800, ch = r.height || 500;
  const scale = Math.max(g.width / cw, g.height / ch, 1 / 1.25);
  const w = cw * scale, h = ch * scale;
  v.box = { x: (g.width - w) / 2, y: (g.height - h) / 2, w, h };
  if (show) showBox(v);
}

// Labels too small to read (a big graph seen whole) are not drawn: they would cost most of
// the painting and show nothing. Zooming in draws them.
function showBox(v) {
  const far = (v.rect.width || 800) / v.box.w < 0.45;
  v.svg.classList.toggle("far", far);
  if (!far && !v.labelled) drawLabels(v);
  v.svg.setAttribute("viewBox", `${v.box.x} ${v.box.y} ${v.box.w} ${v.box.h}`);
}

function panZoom(v) {
  const s = v.svg;
  const setBox = () => showBox(v);
  s.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = (v.rect = s.getBoundingClientRect());
    const scale = Math.min(v.box.w / r.width, v.box.h / r.height);
    const cx = v.box.x + (ev.clientX - r.left) * scale;
    const cy = v.box.y + (ev.clientY - r.top) * scale;
    const f = ev.deltaY > 0 ? 1.15 : 1 / 1.15;
    v.box = { x: cx - (cx - v.box.x) * f, y: cy - (cy - v.box.y) * f, w: v.box.w * f, h: v.box.h * f };
    setBox();
  }, { passive: false });
  let drag = null;
  s.addEventListener("pointerdown", (ev) => {
    if (ev.target.closest(".node.task")) return;
    drag = { x: ev.clientX, y: ev.clientY, box: Object.assign({}, v.box) };
    s.classList.add("dragging");
  });
  window.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const r = (v.rect = s.getBoundingClientRect());
    const scale = Math.max(drag.box.w / r.width, drag.box.h / r.height);
    v.box = Object.assign({}, drag.box, {
      x: drag.box.x - (ev.clientX - drag.x) * scale, y: drag.box.y - (ev.clientY - drag.y) * scale,
    });
    setBox();
  });
  window.addEventListener("pointerup", () => { drag = null; s.classList.remove("dragging"); });
}

// ── states ─────────────────────────────────────────────────────────────────

function setState(v, id, state) {
  const item = v.nodes.get(id);
  if (item && item.el.getAttribute("data-state") !== state) item.el.setAttribute("data-state", state);
}

function datasetState(v, id, fallback) {
  const producer = v.producer[id];
  if (producer) {
    const state = v.nodes.get(producer).el.getAttribute("data-state");
    if (state === "uptodate" || state === "cached") return "uptodate";
    if (state === "running" || state === "failed" || state === "stale") return "stale";
  }
  return fallback;
}

// The workspace's states now; the last run's cache hits shown on the tasks they left up to date.
function applyStatus(v, status) {
  v.status = status;
  for (const [name, t] of Object.entries(status.tasks)) {
    let state = STATUS_TO_STATE[t.state] || "waiting";
    const ran = v.runStates[name];
    if (state === "uptodate" && ran === "cached") state = "cached";
    if (v.live && ran) state = ran;
    setState(v, `t:${name}`, state);
  }
  for (const [path, s] of Object.entries(status.datasets)) {
    const fallback = s === "up-to-date" ? "uptodate" : s === "stale" ? "stale" : "unset";
    setState(v, `d:${path}`, datasetState(v, `d:${path}`, fallback));
  }
}

function applyEvent(v, e) {
  const state = EVENT_TO_STATE[e.event];
  if (e.event === "run_started") {
    v.runStates = {};
    v.counts = { total: (e.counts && e.counts.total) || 0, done: 0, failed: 0, cached: 0 };
  } else if (state && e.task) {
    v.runStates[e.task] = state;
    setState(v, `t:${e.task}`, state);
    for (const [id, item] of v.nodes) {
      if (v.producer[id] === `t:${e.task}`) setState(v, id, datasetState(v, id, item.el.getAttribute("data-state")));
    }
    if (v.counts) {
      if (e.event === "task_completed" || e.event === "task_cached") v.counts.done += 1;
      if (e.event === "task_cached") v.counts.cached += 1;
      if (e.event === "task_failed") v.counts.failed += 1;
    }
    if (v.selected === e.task && v.tab === "task" && e.event !== "task_started") openTask(v, e.task);
  }
  if (v.counts && v.live) {
    const c = v.counts;
    v.runline.textContent = `running: ${c.done}/${c.total} done, ${c.cached} cached, ${c.failed} failed`;
  }
}

// ── runs ───────────────────────────────────────────────────────────────────

function setLive(v, live) {
  v.live = live;
  v.buttons.startBtn.disabled = live;
  v.buttons.forceBtn.disabled = live;
  if (live) v.buttons.cancelBtn.removeAttribute("disabled");
  else v.buttons.cancelBtn.setAttribute("disabled", "");
}

// Follow a run's events (server-sent events read through fetch) until its end message.
async function follow(v, runId) {
  if (v.followed === runId) return;
  v.followed = runId;
  let offset = 0;
  let ended = false;
  setLive(v, true);
  while (!ended && v.followed === runId && !v.abort.signal.aborted) {
    try {
      const res = await fetch(`/ui/api/repos/${enc(v.repo)}/runs/${enc(runId)}/events?offset=${offset}`, {
        headers: headers(), signal: v.abort.signal, cache: "no-store",
      });
      if (res.status === 401) { showLogin("That token was refused."); return; }
      if (!res.ok) throw new ApiError(res.status, `HTTP ${res.status}`);
      document.getElementById("conn").textContent = "live";
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let kind = "message", data = "", id = null;
          for (const line of message.split("\n")) {
            if (line.startsWith("event: ")) kind = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
            else if (line.startsWith("id: ")) id = Number(line.slice(4));
          }
          if (kind === "e3") {
            const e = JSON.parse(data);
            probe.events.push({ run: runId, seq: e.seq, at: Date.now(), kind: e.event });
            if (probe.events.length > 20000) probe.events.splice(0, 10000);
            if (id !== null) offset = id;
            if (v.followed === runId) applyEvent(v, e);
          } else if (kind === "end") {
            ended = true;
          }
        }
      }
    } catch (err) {
      if (err.name === "AbortError") return;
    }
    if (!ended) {
      document.getElementById("conn").textContent = "reconnecting…";
      await sleep(1000);
    }
  }
  if (v.followed !== runId || v.abort.signal.aborted) return;
  document.getElementById("conn").textContent = "";
  setLive(v, false);
  const c = v.counts;
  if (c) v.runline.textContent = `last run: ${c.done}/${c.total} done, ${c.cached} cached, ${c.failed} failed`;
  applyStatus(v, await api(`${v.base}/status`, { signal: v.abort.signal }));
  if (v.tab === "runs") renderRuns(v);
}

// The run history, long-polled: a new run (from this page, the CLI, anywhere) is followed.
async function history(v) {
  let known = null;
  while (!v.abort.signal.aborted) {
    const q = known === null ? "" : `?known=${enc(known)}&wait=25`;
    let runs;
    try {
      runs = await api(`${v.base}/runs${q}`, { signal: v.abort.signal });
    } catch (err) {
      if (err instanceof AuthNeeded || err.name === "AbortError") return;
      await sleep(2000);
      continue;
    }
    v.runs = runs;
    if (v.tab === "runs") renderRuns(v);
    const newest = runs[0];
    known = newest ? `${newest.id}:${newest.status}` : "";
    if (newest && newest.id !== v.followed) follow(v, newest.id).catch(failed);
  }
}

async function start(v, force) {
  try {
    const reply = await api(`${v.base}/start`, { method: "POST", body: { force }, signal: v.abort.signal });
    follow(v, reply.run).catch(failed);
  } catch (err) {
    if (!(err instanceof AuthNeeded)) v.runline.textContent = `could not start: ${err.message}`;
  }
}

async function cancel(v) {
  try {
    await api(`${v.base}/cancel`, { method: "POST", body: {}, signal: v.abort.signal });
    v.runline.textContent = "cancelling…";
  } catch (err) {
    if (!(err instanceof AuthNeeded)) v.runline.textContent = `could not cancel: ${err.message}`;
  }
}

function renderRuns(v) {
  if (v.tab !== "runs") return;
  const runs = v.runs || [];
  const list = el("ol", { class: "runs", id: "run-list" });
  for (const r of runs) {
    const s = r.summary;
    const state = r.status === "completed" ? "uptodate" : r.status === "running" ? "running" : "failed";
    list.append(el("li", { "data-run": r.id },
      el("span", { class: "badge", "data-state": state }, r.status), " ",
      el("code", {}, r.id.slice(0, 13)), " ", el("span", {}, ms(r.duration)),
      el("div", { class: "when" }, `${new Date(r.started).toLocaleString()} · ${r.package} · ` +
        `${s.completed}/${s.total} done, ${s.cached} cached, ${s.failed} failed, ${s.skipped} skipped`),
      r.error ? el("div", { class: "error" }, r.error) : ""));
  }
  v.sidebody.replaceChildren(el("h2", {}, "Run history"),
    runs.length ? list : el("p", { class: "muted" }, "No runs yet."));
}

// ── a task ─────────────────────────────────────────────────────────────────

function select(v, name) {
  for (const { el: shape } of v.nodes.values()) shape.classList.remove("selected");
  const item = v.nodes.get(`t:${name}`);
  if (item) item.el.classList.add("selected");
  v.selected = name;
  showTab(v, "task");
}

async function openTask(v, name) {
  const token_ = (v.panel = {});
  const t = await api(`${v.base}/tasks/${enc(name)}`, { signal: v.abort.signal });
  if (v.panel !== token_) return;
  const state = v.runStates[name] && v.live ? v.runStates[name] : STATUS_TO_STATE[t.state] || t.state;
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "State"), el("dd", {}, `${t.state}${t.detail ? ` (${t.detail})` : ""}`));
  const add = (k, val) => { if (val !== null && val !== undefined && val !== "") facts.append(el("dt", {}, k), el("dd", {}, val)); };
  if (t.execution) add("Execution", `${t.execution.id} (${t.execution.state})`);
  const last = t.last;
  if (last) {
    add("Last run", last.event.replace("task_", ""));
    add("Duration", ms(last.duration));
    add("Cache hit", last.cached ? "yes" : "no");
    add("Worker", last.worker);
    add("Exit code", last.exitCode);
  }
  add("Depends on", t.dependsOn.join(", "));
  const body = [el("h2", {}, t.name, " ", el("span", { class: "badge", "data-state": state }, LABELS[state] || state)), facts];
  if (last && last.event === "task_failed" && last.stderr) {
    body.push(el("h3", {}, "Error"), el("pre", { class: "tail", id: "stderr-tail" }, last.stderr));
  }
  const logs = {};
  for (const stream of ["stdout", "stderr"]) {
    logs[stream] = el("pre", { id: `log-${stream}` }, "");
    body.push(el("h3", {}, stream), logs[stream]);
  }
  body.push(el("h3", {}, "Inputs"));
  const inputs = el("ul", { class: "values" });
  for (const i of t.inputs) inputs.append(valueItem(v, i.path, i.function ? "function" : i.state));
  body.push(inputs, el("h3", {}, "Output"), el("ul", { class: "values" }, valueItem(v, t.output.path, t.output.state)));
  v.sidebody.replaceChildren(...body);
  for (const stream of ["stdout", "stderr"]) followLog(v, token_, name, stream, logs[stream]).catch(() => {});
}

async function followLog(v, panel, task, stream, pre) {
  let offset = 0;
  for (let turn = 0; v.panel === panel && !v.abort.signal.aborted; turn++) {
    let chunk;
    try {
      chunk = await api(`${v.base}/tasks/${enc(task)}/log?stream=${stream}&offset=${offset}&wait=${turn ? 10 : 0}`,
        { signal: v.abort.signal });
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) pre.textContent = "(no execution yet)";
      return;
    }
    if (v.panel !== panel) return;
    if (chunk.text) pre.append(chunk.text);
    offset = chunk.next;
    if (chunk.complete) {
      if (!pre.textContent) pre.textContent = "(empty)";
      return;
    }
  }
}

function valueItem(v, path, state) {
  const out = el("pre", { hidden: "" });
  const more = el("button", { class: "linkish", hidden: "" }, "more…");
  let next = 0;
  const load = async () => {
    try {
      const p = await api(`${v.base}/values/${path.replace(/^\./, "").split(".").map(enc).join("/")}?offset=${next}`,
        { signal: v.abort.signal });
      out.hidden = false;
      if (next === 0) out.replaceChildren(el("div", { class: "muted" }, `type ${p.type}`));
      if (p.tooLarge) out.append(`(${p.tooLarge} bytes: too large to preview here; use e3 get)`);
      else out.append(p.text);
      next = p.next;
      more.hidden = p.next >= p.total;
      if (!more.hidden) more.textContent = `more… (${p.total - p.next} more characters)`;
    } catch (err) {
      out.hidden = false;
      out.textContent = err.message;
    }
  };
  more.addEventListener("click", load);
  const show = el("button", { class: "linkish", onclick: () => { next = 0; load(); } }, "show");
  return el("li", { "data-value": path }, el("code", {}, path), ` (${state}) `, show, out, more);
}

route();

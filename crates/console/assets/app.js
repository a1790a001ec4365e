// Strom's web console: one page, hash routes, plain DOM. Data comes from the node's HTTP APIs:
// the admin API (/v1/cluster, /v1/topics, /v1/groups), /metrics (sampled every 2 s for the
// charts), the HTTP proxy (topic configs, records, topic create/delete) and /v1/kv.

const SAMPLE_MS = 2000;
const HISTORY = 150; // 5 minutes of samples

const main = document.getElementById("main");
const status = document.getElementById("status");

const esc = (s) =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function bytes(n) {
  if (n == null || Number.isNaN(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i || (n > 0 && n < 10) ? 1 : 0)} ${units[i]}`;
}

async function api(path, options) {
  const r = await fetch(path, options);
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!r.ok) throw new Error((body && body.message) || `${r.status} ${r.statusText}`);
  return body;
}

// --- metrics: parsing, sampling, history ---------------------------------------------------

function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

const sum = (samples, name, pred = () => true) =>
  samples.filter((s) => s.name === name && pred(s.labels)).reduce((a, s) => a + s.value, 0);

function by(samples, name, label) {
  const out = {};
  for (const s of samples) if (s.name === name) out[s.labels[label]] = (out[s.labels[label]] || 0) + s.value;
  return out;
}

const history = { t: [], inRate: [], outRate: [], topicIn: {}, groupLag: {} };
let latest = [];
let previous = null;

async function sample() {
  try {
    const text = await (await fetch("/metrics")).text();
    latest = parseMetrics(text);
    const now = Date.now() / 1000;
    const totals = {
      in: sum(latest, "strom_topic_in_bytes_total"),
      out: sum(latest, "strom_topic_out_bytes_total"),
      topicIn: by(latest, "strom_topic_in_bytes_total", "topic"),
    };
    if (previous) {
      const dt = Math.max(now - previous.at, 0.001);
      history.t.push(now);
      history.inRate.push(Math.max(0, (totals.in - previous.in) / dt));
      history.outRate.push(Math.max(0, (totals.out - previous.out) / dt));
      for (const [t, v] of Object.entries(totals.topicIn)) {
        (history.topicIn[t] ||= []).push([now, Math.max(0, (v - (previous.topicIn[t] || 0)) / dt)]);
      }
    }
    for (const [g, v] of Object.entries(by(latest, "strom_group_lag", "group"))) {
      (history.groupLag[g] ||= []).push([now, v]);
    }
    for (const arr of [history.t, history.inRate, history.outRate]) while (arr.length > HISTORY) arr.shift();
    for (const m of [history.topicIn, history.groupLag])
      for (const arr of Object.values(m)) while (arr.length > HISTORY) arr.shift();
    previous = { at: now, ...totals };
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    status.textContent = `metrics unavailable: ${e.message}`;
  }
}

// --- charts ---------------------------------------------------------------------------------

const COLORS = ["#2f6fde", "#1f8a4c", "#c2851f", "#8e44ad", "#c23b22"];

/** Draws `series` ([{label, points: [[t, v]]}]) on `canvas`, values formatted by `fmt`. */
function chart(canvas, series, fmt) {
  if (!canvas) return;
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, w, h);
  const pts = series.flatMap((s) => s.points);
  const pad = { l: 70, r: 10, t: 10, b: 20 };
  g.fillStyle = "#6b7385"; g.font = "11px system-ui";
  if (pts.length < 2) { g.fillText("collecting samples…", pad.l, h / 2); return; }
  const t0 = Math.min(...pts.map((p) => p[0])), t1 = Math.max(...pts.map((p) => p[0]));
  const vmax = Math.max(1, ...pts.map((p) => p[1]));
  const x = (t) => pad.l + ((t - t0) / Math.max(t1 - t0, 1)) * (w - pad.l - pad.r);
  const y = (v) => h - pad.b - (v / vmax) * (h - pad.t - pad.b);
  g.strokeStyle = "#e3e6ec";
  for (const f of [0, 0.5, 1]) {
    g.beginPath(); g.moveTo(pad.l, y(vmax * f)); g.lineTo(w - pad.r, y(vmax * f)); g.stroke();
    g.fillText(fmt(vmax * f), 4, y(vmax * f) + 4);
  }
  g.fillText(`${Math.round(t1 - t0)} s`, w - pad.r - 30, h - 4);
  series.forEach((s, i) => {
    g.strokeStyle = COLORS[i % COLORS.length]; g.lineWidth = 2; g.beginPath();
    s.points.forEach(([t, v], j) => (j ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
  });
}

function legend(series) {
  return series.map((s, i) => `<span style="color:${COLORS[i % COLORS.length]}">■ ${esc(s.label)}</span>`).join("");
}

// --- pages ----------------------------------------------------------------------------------

let refreshTimer = null;

/** Shows a page whose `draw` renders the data part; pages with forms redraw only on demand. */
function page(html, draw, live = true) {
  main.innerHTML = html;
  const run = async () => {
    try { await draw(); } catch (e) { const el = document.getElementById("error"); if (el) el.textContent = e.message; }
  };
  run();
  if (live) refreshTimer = setInterval(run, SAMPLE_MS);
}

function overview() {
  page(`<h1>Overview</h1><div id="error" class="error"></div><div id="cards" class="cards"></div>
    <h2>Throughput</h2><div class="legend" id="legend"></div><canvas id="throughput" class="chart"></canvas>
    <h2>Nodes</h2><div id="nodes"></div>`, async () => {
    const [cluster, topics] = await Promise.all([api("/v1/cluster"), api("/v1/topics")]);
    const alive = cluster.nodes.filter((n) => !n.fenced && !n.removed).length;
    const partitions = topics.reduce((a, t) => a + t.partitions, 0);
    const under = sum(latest, "strom_partitions_under_replicated");
    const card = (k, v, cls = "") => `<div class="card"><div class="k">${k}</div><div class="v ${cls}">${v}</div></div>`;
    document.getElementById("cards").innerHTML =
      card("Mode", esc(cluster.mode)) +
      card("Nodes alive", `<span id="nodes-alive">${alive}</span> / ${cluster.nodes.length}`) +
      card("Controller leader", esc(cluster.controller_leader ?? "none")) +
      card("Topics", `<span id="topic-count">${topics.filter((t) => !t.internal).length}</span>`) +
      card("Partitions", partitions) +
      card("Under-replicated", `<span id="under-replicated">${under}</span>`, under ? "bad" : "ok") +
      card("In", `${bytes(history.inRate.at(-1) || 0)}/s`) +
      card("Out", `${bytes(history.outRate.at(-1) || 0)}/s`);
    document.getElementById("nodes").innerHTML = `<table><tr><th>Node</th><th>Kafka</th><th>Raft</th><th>State</th></tr>${cluster.nodes
      .map((n) => `<tr><td>${n.id}${n.id === cluster.node_id ? " (this node)" : ""}</td><td>${esc(n.kafka)}</td><td>${esc(n.raft || "–")}</td>
        <td>${n.removed ? "removed" : n.fenced ? '<span class="bad">fenced</span>' : '<span class="ok">alive</span>'}</td></tr>`)
      .join("")}</table>`;
    const series = [
      { label: "in", points: history.t.map((t, i) => [t, history.inRate[i]]) },
      { label: "out", points: history.t.map((t, i) => [t, history.outRate[i]]) },
    ];
    document.getElementById("legend").innerHTML = legend(series);
    chart(document.getElementById("throughput"), series, (v) => `${bytes(v)}/s`);
  });
}

function topicsPage() {
  page(`<h1>Topics</h1><div id="error" class="error"></div>
    <form id="create" class="row"><input id="new-name" placeholder="new topic" required>
      <input id="new-partitions" type="number" min="1" value="1" style="width:80px"> partitions
      <button id="create-topic">Create topic</button></form>
    <div id="list"></div>`, async () => {
    const topics = await api("/v1/topics");
    const size = by(latest, "strom_partition_log_size_bytes", "topic");
    const rate = (t) => (history.topicIn[t] || []).at(-1)?.[1] || 0;
    document.getElementById("list").innerHTML = `<table id="topics-table"><tr><th>Name</th><th class="num">Partitions</th>
      <th class="num">Replication</th><th class="num">Size here</th><th class="num">In</th></tr>${topics
      .filter((t) => !t.internal)
      .map((t) => `<tr data-topic="${esc(t.name)}"><td><a href="#/topics/${encodeURIComponent(t.name)}">${esc(t.name)}</a></td>
        <td class="num">${t.partitions}</td><td class="num">${t.replication_factor}</td>
        <td class="num">${bytes(size[t.name] || 0)}</td><td class="num">${bytes(rate(t.name))}/s</td></tr>`)
      .join("")}</table>`;
  });
  document.getElementById("create").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = document.getElementById("new-name").value.trim();
    const partitions = Number(document.getElementById("new-partitions").value);
    if (!name || !confirm(`Create topic ${name} with ${partitions} partitions?`)) return;
    try {
      await api("/v3/clusters/strom/topics", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ topic_name: name, partitions_count: partitions }),
      });
      location.hash = `#/topics/${encodeURIComponent(name)}`;
    } catch (e) { document.getElementById("error").textContent = e.message; }
  });
}

function topicPage(name) {
  const q = encodeURIComponent(name);
  page(`<h1>Topic ${esc(name)}</h1><div id="error" class="error"></div>
    <div class="row"><a href="#/browse/${q}">Browse messages</a>
      <button id="delete" class="danger">Delete topic</button></div>
    <h2>Partitions</h2><div id="partitions"></div><h2>Configs</h2><div id="configs"></div>`, async () => {
    const t = await api(`/v1/topics/${q}`);
    const cell = (p, k) => (p.local ? p.local[k] : "–");
    document.getElementById("partitions").innerHTML = `<table id="partitions-table"><tr><th>Partition</th><th>Leader</th><th>Replicas</th>
      <th>ISR</th><th class="num">Start</th><th class="num">End</th><th class="num">Size here</th></tr>${t.partitions
      .map((p) => `<tr><td>${p.partition}</td><td>${p.leader ?? '<span class="bad">none</span>'}</td><td>${p.replicas.join(", ")}</td>
        <td class="${p.isr.length < p.replicas.length ? "bad" : ""}">${p.isr.join(", ")}</td><td class="num">${cell(p, "log_start_offset")}</td>
        <td class="num">${cell(p, "high_watermark")}</td><td class="num">${p.local ? bytes(p.local.size_bytes) : "–"}</td></tr>`)
      .join("")}</table>`;
    let configs = t.config;
    try { configs = (await api(`/topics/${q}`)).configs; } catch { /* overrides only */ }
    document.getElementById("configs").innerHTML = `<table id="configs-table"><tr><th>Name</th><th>Value</th></tr>${Object.entries(configs)
      .sort()
      .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`)
      .join("")}</table>`;
  });
  document.getElementById("delete").addEventListener("click", async () => {
    if (!confirm(`Delete topic ${name} and all its records? This cannot be undone.`)) return;
    try {
      await api(`/v3/clusters/strom/topics/${q}`, { method: "DELETE" });
      location.hash = "#/topics";
    } catch (e) { document.getElementById("error").textContent = e.message; }
  });
}

function decode(b64) {
  if (b64 == null) return null;
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function show(b64, as) {
  const raw = decode(b64);
  if (raw == null) return '<span class="muted">null</span>';
  if (as === "hex") return esc([...raw].map((b) => b.toString(16).padStart(2, "0")).join(" "));
  const text = new TextDecoder().decode(raw);
  if (as === "json") { try { return esc(JSON.stringify(JSON.parse(text), null, 2)); } catch { return esc(text); } }
  return esc(text);
}

function browsePage(name) {
  const q = encodeURIComponent(name);
  page(`<h1>Messages in ${esc(name)}</h1><div id="error" class="error"></div>
    <form id="query" class="row">
      Partition <select id="partition"></select>
      <select id="from"><option value="newest">newest</option><option value="offset">from offset</option><option value="timestamp">from time (ms)</option></select>
      <input id="at" placeholder="offset or ms" style="width:140px">
      Limit <input id="limit" type="number" value="50" min="1" max="500" style="width:70px">
      Show <select id="as"><option>text</option><option>json</option><option>hex</option></select>
      <input id="filter" placeholder="filter key or value">
      <button>Read</button></form>
    <div id="meta" class="muted"></div><div id="records"></div>`, async () => {
    const t = await api(`/v1/topics/${q}`);
    document.getElementById("partition").innerHTML = t.partitions.map((p) => `<option>${p.partition}</option>`).join("");
    await read();
  }, false);
  let lastRead = null;
  async function read() {
    const p = document.getElementById("partition").value || 0;
    const from = document.getElementById("from").value, at = document.getElementById("at").value;
    const limit = document.getElementById("limit").value;
    let url = `/v1/topics/${q}/partitions/${p}/records?limit=${limit}`;
    if (from === "offset" && at) url += `&offset=${encodeURIComponent(at)}`;
    if (from === "timestamp" && at) url += `&timestamp=${encodeURIComponent(at)}`;
    try { lastRead = await api(url); render(); } catch (e) { document.getElementById("error").textContent = e.message; }
  }
  function render() {
    if (!lastRead) return;
    const as = document.getElementById("as").value, filter = document.getElementById("filter").value;
    const text = (b64) => (b64 == null ? "" : new TextDecoder().decode(decode(b64)));
    const rows = lastRead.records
      .filter((r) => !filter || text(r.key).includes(filter) || text(r.value).includes(filter))
      .reverse();
    document.getElementById("meta").textContent =
      `partition ${lastRead.partition}: offsets ${lastRead.log_start_offset} to ${lastRead.high_watermark}; ${rows.length} shown, newest first`;
    document.getElementById("records").innerHTML = `<table id="records-table"><tr><th class="num">Offset</th><th>Time</th><th>Key</th><th>Headers</th><th>Value</th></tr>${rows
      .map((r) => `<tr data-offset="${r.offset}"><td class="num">${r.offset}</td><td>${r.timestamp ? new Date(r.timestamp).toISOString() : "–"}</td>
        <td><pre>${show(r.key, as)}</pre></td><td><pre>${r.headers.map(([k, v]) => `${esc(k)}: ${show(v, as)}`).join("\n")}</pre></td>
        <td><pre>${show(r.value, as)}</pre></td></tr>`)
      .join("")}</table>`;
  }
  document.getElementById("query").addEventListener("submit", (ev) => { ev.preventDefault(); read(); });
  document.getElementById("as").addEventListener("change", render);
  document.getElementById("filter").addEventListener("input", render);
}

function groupsPage() {
  page(`<h1>Consumer groups</h1><div id="error" class="error"></div><div id="list"></div>`, async () => {
    const groups = await api("/v1/groups");
    const lag = by(latest, "strom_group_lag", "group");
    document.getElementById("list").innerHTML = groups.length
      ? `<table id="groups-table"><tr><th>Group</th><th>State</th><th>Protocol</th><th class="num">Lag</th></tr>${groups
          .map((g) => `<tr data-group="${esc(g.group_id)}"><td><a href="#/groups/${encodeURIComponent(g.group_id)}">${esc(g.group_id)}</a></td>
            <td>${esc(g.state)}</td><td>${esc(g.protocol_type)}</td><td class="num">${lag[g.group_id] ?? "–"}</td></tr>`)
          .join("")}</table>`
      : '<p class="muted">No consumer groups coordinated by this node.</p>';
  });
}

function groupPage(id) {
  const q = encodeURIComponent(id);
  page(`<h1>Group ${esc(id)}</h1><div id="error" class="error"></div><div id="summary" class="cards"></div>
    <h2>Lag</h2><canvas id="lag-chart" class="chart"></canvas>
    <h2>Members</h2><div id="members"></div><h2>Offsets</h2><div id="offsets"></div>
    <h2>Reset offsets</h2>
    <form id="reset" class="row">Topic <input id="reset-topic" placeholder="topic" required>
      to <select id="reset-to"><option>earliest</option><option>latest</option><option value="offset">offset</option></select>
      <input id="reset-offset" type="number" min="0" placeholder="offset" style="width:100px">
      <button id="reset-offsets">Reset offsets</button>
      <span class="muted">only while the group has no active members</span></form>`, async () => {
    const g = await api(`/v1/groups/${q}`);
    const topicInput = document.getElementById("reset-topic");
    if (!topicInput.value && g.offsets.length) topicInput.value = g.offsets[0].topic;
    const total = g.offsets.reduce((a, o) => a + (o.lag ?? 0), 0);
    document.getElementById("summary").innerHTML =
      `<div class="card"><div class="k">State</div><div class="v" id="group-state">${esc(g.state)}</div></div>
       <div class="card"><div class="k">Members</div><div class="v">${g.members.length}</div></div>
       <div class="card"><div class="k">Total lag</div><div class="v" id="lag-total">${total}</div></div>`;
    document.getElementById("members").innerHTML = `<table><tr><th>Member</th><th>Client</th><th>Host</th><th>Assignment</th></tr>${g.members
      .map((m) => `<tr><td>${esc(m.member_id)}</td><td>${esc(m.client_id)}</td><td>${esc(m.client_host ?? m.host)}</td>
        <td>${esc((m.assignment || []).map(([t, p]) => `${t}/${p}`).join(", "))}</td></tr>`)
      .join("")}</table>`;
    document.getElementById("offsets").innerHTML = `<table id="offsets-table"><tr><th>Topic</th><th class="num">Partition</th>
      <th class="num">Committed</th><th class="num">Lag</th></tr>${g.offsets
      .map((o) => `<tr><td>${esc(o.topic)}</td><td class="num">${o.partition}</td><td class="num">${o.committed_offset}</td>
        <td class="num">${o.lag ?? "–"}</td></tr>`)
      .join("")}</table>`;
    chart(document.getElementById("lag-chart"), [{ label: "lag", points: history.groupLag[id] || [] }], (v) => `${Math.round(v)}`);
  });
  document.getElementById("reset").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const topic = document.getElementById("reset-topic").value.trim();
    const choice = document.getElementById("reset-to").value;
    const to = choice === "offset" ? Number(document.getElementById("reset-offset").value) : choice;
    if (!topic || !confirm(`Reset the offsets of group ${id} on ${topic} to ${to}? Its consumers must be stopped.`)) return;
    try {
      await api(`/v1/groups/${q}/reset-offsets`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ topic, to }),
      });
      document.getElementById("error").textContent = "";
    } catch (e) { document.getElementById("error").textContent = e.message; }
  });
}

function kvPage() {
  page(`<h1>Coordination KV</h1><div id="error" class="error"></div>
    <form id="query" class="row">Prefix <input id="prefix" placeholder="/">
      <button>List</button><button type="button" id="watch">Watch live</button></form>
    <div id="meta" class="muted"></div><div id="keys"></div>
    <h2>Live changes</h2><ul id="kv-events" class="muted"></ul>`, async () => {
    await list();
  }, false);
  let source = null;
  async function list() {
    const prefix = document.getElementById("prefix").value;
    try {
      const r = await api(`/v1/kv?prefix=${encodeURIComponent(prefix)}&limit=200`);
      document.getElementById("meta").textContent = `revision ${r.revision}; ${r.count} keys${r.more ? " (first 200 shown)" : ""}`;
      document.getElementById("keys").innerHTML = `<table id="kv-table"><tr><th>Key</th><th>Value</th><th class="num">Created</th>
        <th class="num">Modified</th><th class="num">Version</th><th class="num">Lease</th></tr>${r.kvs
        .map((k) => `<tr data-key="${esc(k.key)}"><td>${esc(k.key)}</td><td><pre>${esc(k.value)}</pre></td><td class="num">${k.create_revision}</td>
          <td class="num">${k.mod_revision}</td><td class="num">${k.version}</td><td class="num">${k.lease || "–"}</td></tr>`)
        .join("")}</table>`;
    } catch (e) { document.getElementById("error").textContent = e.message; }
  }
  document.getElementById("query").addEventListener("submit", (ev) => { ev.preventDefault(); list(); });
  document.getElementById("watch").addEventListener("click", () => {
    if (source) { source.close(); source = null; document.getElementById("watch").textContent = "Watch live"; return; }
    const prefix = document.getElementById("prefix").value;
    source = new EventSource(`/v1/kv/watch?prefix=${encodeURIComponent(prefix)}`);
    activeSource = source;
    document.getElementById("watch").textContent = "Stop watching";
    source.onmessage = (m) => {
      const e = JSON.parse(m.data);
      const li = document.createElement("li");
      li.dataset.key = e.key;
      li.textContent = `${e.type} ${e.key} = ${e.value} (revision ${e.mod_revision})`;
      document.getElementById("kv-events").prepend(li);
      list();
    };
  });
}

let activeSource = null;

function route() {
  clearInterval(refreshTimer);
  if (activeSource) { activeSource.close(); activeSource = null; }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const section = parts[0] || "overview";
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.page === section || (section === "browse" && a.dataset.page === "topics"));
  }
  if (section === "topics" && parts[1]) topicPage(parts[1]);
  else if (section === "topics") topicsPage();
  else if (section === "browse" && parts[1]) browsePage(parts[1]);
  else if (section === "groups" && parts[1]) groupPage(parts[1]);
  else if (section === "groups") groupsPage();
  else if (section === "kv") kvPage();
  else overview();
}

window.addEventListener("hashchange", route);
sample().then(route);
setInterval(sample, SAMPLE_MS);

// Hearth web UI, admin page's monitoring: live figures and the log tail from seed 004's
// `/api/websocket` (the session cookie authenticates it), the stored history of CPU and
// memory as a small chart (`/api/monitoring/history`). Uses app.js's helpers ($, text).
"use strict";

const HearthMonitoring = (() => {
  let socket = null;
  const MAX_LOG_LINES = 200;
  const SVG = "http://www.w3.org/2000/svg";

  function duration(secs) {
    const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
    return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
  }

  function showStatus(d) {
    $("#mon-cpu").textContent = `${d.cpu.toFixed(1)} %`;
    $("#mon-memory").textContent = `${d.memory.toFixed(1)} % (Hearth: ${(d.processMemory / 1048576).toFixed(0)} MiB)`;
    $("#mon-requests").textContent = String(d.totalRequests);
    $("#mon-models").textContent = `${d.activeModels} generating, ${d.loadedModels} loaded`;
    $("#mon-uptime").textContent = duration(d.uptime);
  }

  function addLogs(records) {
    const list = $("#mon-logs");
    for (const r of records) {
      const li = text("li", `${new Date(r.timestamp).toLocaleTimeString()} ${r.level.toUpperCase()} ${r.source}: ${r.message}`, `log-${r.level}`);
      list.prepend(li);
    }
    while (list.children.length > MAX_LOG_LINES) list.lastElementChild.remove();
  }

  function connect() {
    if (socket) return;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${proto}://${location.host}/api/websocket`);
    socket.addEventListener("message", (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === "status") showStatus(m.data);
      else if (m.type === "logs") addLogs(m.data);
    });
    socket.addEventListener("close", () => { socket = null; });
  }

  function draw(rows) {
    const svg = $("#mon-chart");
    if (!rows.length) {
      svg.replaceChildren();
      $("#mon-chart-note").textContent = "No samples yet: each server stores one every monitoring.sample_secs.";
      return;
    }
    const [w, h] = [600, 120];
    const times = rows.map((r) => Date.parse(r.timestamp));
    const t0 = times[0], span = Math.max(1, times[times.length - 1] - t0);
    const line = (key, cls) => {
      const p = document.createElementNS(SVG, "polyline");
      p.setAttribute("points", rows.map((r, i) => `${(((times[i] - t0) / span) * w).toFixed(1)},${(h - (r[key] / 100) * h).toFixed(1)}`).join(" "));
      p.setAttribute("class", cls);
      return p;
    };
    svg.replaceChildren(line("cpu", "chart-cpu"), line("memory", "chart-memory"));
    const requests = rows.reduce((n, r) => n + r.requests, 0);
    $("#mon-chart-note").textContent = `${rows.length} samples since ${new Date(t0).toLocaleString()}: CPU (solid) and memory (dashed), percent; ${requests} requests.`;
  }

  async function loadHistory() {
    const res = await fetch("/api/monitoring/history?hours=24", { credentials: "same-origin" });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.detail || `HTTP ${res.status}`);
    draw(body.history);
  }

  async function show() {
    connect();
    await loadHistory();
  }

  function hide() {
    if (socket) socket.close();
    socket = null;
  }

  return { show, hide };
})();

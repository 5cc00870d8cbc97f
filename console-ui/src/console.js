// The investigation console's only script: charts, and new alerts without a reload.
//
// Pages are complete without it (every chart has its numbers in a table, every
// action is a plain form). It draws the charts from the JSON data blocks the
// server rendered next to them, and polls /console/api/alerts to add new
// alerts to the alerts table and announce them in the page's live region.
// Values from alerts are only ever set with textContent or as attributes,
// never parsed as markup.

import uPlot from "uplot";

const body = document.body;
const base = body.dataset.base || "/console";
const POLL_MS = 2000;
const SLACK_MS = 30000; // alerts are stamped with their events' time, recorded a little later
const SEVERITY_CLASS = { 1: "sev-info", 2: "sev-low", 3: "sev-medium", 4: "sev-high", 5: "sev-critical", 6: "sev-critical" };

function readData(id) {
  const node = document.getElementById(id);
  if (!node) return null;
  try {
    return JSON.parse(node.textContent);
  } catch {
    return null;
  }
}

function isoText(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// -- charts ------------------------------------------------------------------------------------------

function marksHook(marks) {
  return (u) => {
    const { ctx, bbox } = u;
    ctx.save();
    ctx.strokeStyle = "#7a3e00";
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = 2;
    for (const mark of marks) {
      const x = Math.round(u.valToPos(mark, "x", true));
      if (x < bbox.left || x > bbox.left + bbox.width) continue;
      ctx.beginPath();
      ctx.moveTo(x, bbox.top);
      ctx.lineTo(x, bbox.top + bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  };
}

const pad = (n) => String(n).padStart(2, "0");

// axis labels in UTC, 24-hour, as precise as the tick spacing needs
function timeLabels(u, splits, axis, space, incr) {
  return splits.map((t) => {
    const d = new Date(t * 1000);
    const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
    const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
    if (incr >= 86400) return day;
    if (incr < 60) return `${hm}:${pad(d.getUTCSeconds())}`;
    return d.getUTCHours() === 0 && d.getUTCMinutes() === 0 ? `${day}\n${hm}` : hm;
  });
}

const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7];

function chartOptions(kind, width, data) {
  const common = {
    width,
    height: 220,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [
      { stroke: "#333", values: timeLabels, space: 70 },
      { stroke: "#333", grid: { stroke: "#e3e3e3" }, incrs: COUNT_STEPS },
    ],
    legend: { live: false },
  };
  if (kind === "alerts") {
    const bars = uPlot.paths.bars({ size: [0.7, 40] });
    return {
      ...common,
      series: [
        {},
        { label: "Alerts opened", stroke: "#8a4b00", fill: "rgba(138,75,0,0.35)", paths: bars, points: { show: false } },
        { label: "High or critical", stroke: "#a4161a", fill: "rgba(164,22,26,0.55)", paths: bars, points: { show: false } },
      ],
    };
  }
  const options = {
    ...common,
    series: [
      {},
      { label: "Requests", stroke: "#1d4f91", fill: "rgba(29,79,145,0.12)", width: 2 },
      { label: "4xx answers", stroke: "#8a4b00", width: 2, dash: [6, 3] },
      { label: "Denied by the gateway", stroke: "#a4161a", width: 2 },
    ],
  };
  if (data.marks && data.marks.length) options.hooks = { draw: [marksHook(data.marks)] };
  return options;
}

function drawChart(node) {
  const data = readData(node.dataset.source);
  if (!data || !data.series) return;
  const kind = node.dataset.chart;
  const s = data.series;
  const columns = kind === "alerts" ? [s.times, s.alerts, s.high] : [s.times, s.total, s.refused, s.denied];
  const width = () => Math.max(280, node.clientWidth || node.parentElement.clientWidth || 600);
  const plot = new uPlot(chartOptions(kind, width(), data), columns, node);
  node.querySelectorAll("canvas").forEach((canvas) => canvas.setAttribute("aria-hidden", "true"));
  let pending = 0;
  window.addEventListener("resize", () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => plot.setSize({ width: width(), height: 220 }));
  });
}

document.querySelectorAll("[data-chart]").forEach(drawChart);

// -- new alerts ----------------------------------------------------------------------------------------

const live = document.getElementById("live");
const table = document.querySelector("table[data-live='alerts']");
const pageSince = Number(body.dataset.pollSince) || Date.now();
const known = new Set(Array.from(document.querySelectorAll("[data-alert]"), (row) => row.dataset.alert));
let since = pageSince;

function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

function cell(...children) {
  const td = document.createElement("td");
  for (const child of children) td.append(child);
  return td;
}

function severityBadge(alert) {
  const span = document.createElement("span");
  span.className = "badge " + (SEVERITY_CLASS[alert.severity] || "sev-medium");
  span.textContent = alert.severity_name;
  return span;
}

function timeNode(ms) {
  const node = document.createElement("time");
  node.dateTime = new Date(ms).toISOString();
  node.textContent = isoText(ms);
  return node;
}

function alertRow(alert) {
  const row = document.createElement("tr");
  row.dataset.alert = alert.id;
  row.className = "fresh";
  const principal = link(`${base}/principal?key=${encodeURIComponent(alert.key)}`, alert.key);
  const count = cell(String(alert.count));
  count.className = "count";
  const last = cell(timeNode(alert.last_seen));
  last.className = "last";
  row.append(
    cell(severityBadge(alert)),
    cell(link(`${base}/alerts/${encodeURIComponent(alert.id)}`, alert.summary)),
    cell(principal),
    cell(alert.detector),
    count,
    last,
    cell(alert.status),
  );
  return row;
}

function updateRow(row, alert) {
  const count = row.querySelector(".count");
  if (count) count.textContent = String(alert.count);
  const last = row.querySelector(".last");
  if (last) last.replaceChildren(timeNode(alert.last_seen));
}

function announce(alerts) {
  if (!live || !alerts.length) return;
  const note = document.createElement("p");
  note.className = "announce";
  if (alerts.length === 1) {
    const alert = alerts[0];
    note.append(`New ${alert.severity_name} alert: `, link(`${base}/alerts/${encodeURIComponent(alert.id)}`, alert.summary));
  } else {
    note.append(`${alerts.length} new alerts. `, link(`${base}/alerts`, "Show alerts"));
  }
  live.replaceChildren(note);
}

function take(alerts) {
  const fresh = [];
  const tbody = table ? table.tBodies[0] : null;
  for (const alert of [...alerts].reverse()) {
    // oldest first, so the newest ends on top
    const row = tbody ? tbody.querySelector(`tr[data-alert="${CSS.escape(alert.id)}"]`) : null;
    if (row) {
      updateRow(row, alert);
      continue;
    }
    if (known.has(alert.id)) continue;
    known.add(alert.id);
    if (tbody) {
      tbody.querySelectorAll("tr.empty").forEach((empty) => empty.remove());
      tbody.prepend(alertRow(alert));
      const shown = document.getElementById("alert-count");
      if (shown) shown.textContent = String(tbody.querySelectorAll("tr[data-alert]").length);
    }
    if (tbody || alert.first_seen >= pageSince - SLACK_MS) fresh.push(alert);
  }
  announce(fresh.reverse());
}

async function poll() {
  if (body.dataset.detection !== "on") return;
  if (!document.hidden) {
    try {
      const answer = await fetch(`${base}/api/alerts?since=${since}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (answer.status === 401) {
        if (live) live.textContent = "Your console session has ended: sign in again to see new alerts.";
        return;
      }
      if (answer.ok) {
        const data = await answer.json();
        take(data.alerts || []);
        since = Math.max(pageSince - SLACK_MS, (data.now || Date.now()) - SLACK_MS);
      }
    } catch {
      // the listener restarts or the network is down: try again at the next tick
    }
  }
  setTimeout(poll, POLL_MS);
}

setTimeout(poll, POLL_MS / 2);

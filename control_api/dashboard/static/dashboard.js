// The dashboard's charts: read /stats and /stats/timeseries (same origin, the HttpOnly cookie signs the
// requests in), draw them with the vendored Chart.js, and redraw every 30 s while auto-refresh is on.
"use strict";

(function () {
  const root = document.getElementById("dashboard");
  const since = root.dataset.since;
  const bucket = root.dataset.bucket;
  const charts = {};
  const OK = "#2e7d32", FAILED = "#c62828";
  const PALETTE = ["#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f"];

  async function getJSON(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options || {});
    charts[id] = new Chart(canvas, config);
    canvas.dataset.drawn = "1";
  }

  function label(iso) {
    const text = iso.replace(".000000Z", "Z");
    return bucket === "1d" ? text.slice(0, 10) : text.slice(5, 16).replace("T", " ");
  }

  function ms(value) { return value === null ? "-" : value.toFixed(1) + " ms"; }

  function numbers(stats) {
    document.getElementById("total-requests").textContent = stats.total_requests;
    document.getElementById("failed-requests").textContent = stats.failed_requests;
    document.getElementById("error-rate").textContent = (stats.error_rate * 100).toFixed(2) + " %";
    for (const p of ["p50", "p95", "p99"]) {
      document.getElementById("latency-" + p).textContent = ms(stats.processing_time_ms[p]);
    }
  }

  function errorRates(points) {
    const keys = new Set();
    for (const point of points) {
      for (const [model, versions] of Object.entries(point.by_model)) {
        for (const version of Object.keys(versions)) keys.add(model + " " + version);
      }
    }
    return [...keys].sort().map((key, i) => {
      const [model, version] = key.split(" ");
      return {
        label: key,
        borderColor: PALETTE[i % PALETTE.length],
        spanGaps: true,
        data: points.map((point) => {
          const figures = (point.by_model[model] || {})[version];
          return figures && figures.requests ? (100 * figures.errors) / figures.requests : null;
        }),
      };
    });
  }

  async function load() {
    const query = "since=" + encodeURIComponent(since);
    const [stats, series] = await Promise.all([
      getJSON("/stats?" + query),
      getJSON("/stats/timeseries?bucket=" + bucket + "&" + query),
    ]);
    numbers(stats);
    const labels = series.points.map((point) => label(point.start));
    draw("chart-requests", {
      type: "bar",
      data: {
        labels,
        datasets: [
          { label: "ok", backgroundColor: OK, data: series.points.map((p) => p.requests - p.errors) },
          { label: "failed", backgroundColor: FAILED, data: series.points.map((p) => p.errors) },
        ],
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });
    draw("chart-latency", {
      type: "line",
      data: {
        labels,
        datasets: ["p50", "p95", "p99"].map((p, i) => ({
          label: p, borderColor: PALETTE[i], spanGaps: true, data: series.points.map((point) => point[p]),
        })),
      },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } } } },
    });
    draw("chart-errors", {
      type: "line",
      data: { labels, datasets: errorRates(series.points) },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "% failed" } } } },
    });
    const classes = stats.classes.top.concat(stats.classes.other ? [{ label: "other", count: stats.classes.other }] : []);
    draw("chart-classes", {
      type: "bar",
      data: { labels: classes.map((c) => c.label), datasets: [{ label: "images", backgroundColor: PALETTE[0], data: classes.map((c) => c.count) }] },
      options: { indexAxis: "y" },
    });
    const users = stats.users.top;
    draw("chart-users", {
      type: "bar",
      data: {
        labels: users.map((u) => u.username || "(no token)"),
        datasets: [
          { label: "ok", backgroundColor: OK, data: users.map((u) => u.requests - u.errors) },
          { label: "failed", backgroundColor: FAILED, data: users.map((u) => u.errors) },
        ],
      },
      options: { indexAxis: "y", scales: { x: { stacked: true }, y: { stacked: true } } },
    });
    document.getElementById("refreshed").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    root.dataset.loaded = String(Number(root.dataset.loaded || 0) + 1);
  }

  function refresh() {
    load().catch((error) => {
      document.getElementById("refreshed").textContent = "refresh failed: " + error.message;
    });
  }

  refresh();
  setInterval(() => {
    if (document.getElementById("auto-refresh").checked) refresh();
  }, 30000);
})();

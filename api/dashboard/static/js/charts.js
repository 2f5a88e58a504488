// The three charts (success rate, duration, rows changed per run) over 24 h or 7 days,
// drawn with the vendored uPlot from the sidecar's time-bucketed stats series.

import { api } from "./api.js";
import { byId, setMessage } from "./dom.js";
import {
  formatAxisTime,
  formatDateTime,
  formatDecimal,
  formatDuration,
  formatInt,
  parseTime,
} from "./format.js";

const WINDOWS = {
  "24h": { bucket: "1h", long: false },
  "7d": { bucket: "6h", long: true },
};
const PALETTE = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#4b5563"];
const HEIGHT = 220;
// How often and for how long to re-ask when the answer predates the latest sync.
const STALE_RETRY_MS = 2000;
const STALE_RETRY_FOR_MS = 30_000;

/**
 * Turn the sidecar's column-oriented series (one per integration and entity) into uPlot
 * columns per integration: success rate in %, mean duration in seconds and rows changed
 * (created + updated + deleted) per run; null where the bucket had no finished run.
 * @param {object} answer GET /stats/series (see docs/sidecar.md)
 * @param {Map<string, string>} names integration id → display name
 */
export function toColumns(answer, names = new Map()) {
  const xs = answer.t || [];
  const byIntegration = new Map();
  for (const series of answer.series || []) {
    let sums = byIntegration.get(series.integration_id);
    if (!sums) {
      const zeros = () => new Array(xs.length).fill(0);
      sums = { runs: zeros(), success: zeros(), finished: zeros(), durationTotal: zeros(), changed: zeros() };
      byIntegration.set(series.integration_id, sums);
    }
    for (let i = 0; i < xs.length; i += 1) {
      const finished = series.success[i] + series.partial[i] + series.failed[i];
      sums.runs[i] += series.runs[i];
      sums.success[i] += series.success[i];
      sums.finished[i] += finished;
      // A bucket's mean is over its finished runs, so weight it by them to combine entities.
      if (series.mean_duration_ms[i] !== null) sums.durationTotal[i] += series.mean_duration_ms[i] * finished;
      sums.changed[i] += series.created[i] + series.updated[i] + series.deleted[i];
    }
  }
  const lines = [...byIntegration.entries()].map(([id, sums]) => ({
    id,
    name: names.get(id) || id,
    success: sums.finished.map((n, i) => (n ? (sums.success[i] / n) * 100 : null)),
    duration: sums.finished.map((n, i) => (n ? sums.durationTotal[i] / n / 1000 : null)),
    rows: sums.runs.map((n, i) => (n ? sums.changed[i] / n : null)),
  }));
  return { xs, lines };
}

class Chart {
  /**
   * @param {string} id figure id
   * @param {"success"|"duration"|"rows"} metric
   * @param {(v: number) => string} format value formatter for the axis and legend
   */
  constructor(id, metric, format) {
    this.figure = byId(id);
    this.body = this.figure.querySelector(".chart-body");
    this.metric = metric;
    this.format = format;
    this.plot = null;
    new ResizeObserver(() => this.resize()).observe(this.body);
  }

  width() {
    return Math.max(this.body.clientWidth, 200);
  }

  resize() {
    if (this.plot && this.plot.width !== this.width()) this.plot.setSize({ width: this.width(), height: HEIGHT });
  }

  draw({ xs, lines }, long) {
    this.plot?.destroy();
    this.plot = null;
    this.figure.dataset.series = String(lines.length);
    this.figure.dataset.points = String(xs.length);
    if (xs.length === 0 || lines.length === 0) {
      this.body.replaceChildren();
      this.body.dataset.empty = "Нет запусков за этот период";
      return;
    }
    delete this.body.dataset.empty;
    const options = {
      width: this.width(),
      height: HEIGHT,
      cursor: { drag: { x: false, y: false } },
      scales: this.metric === "success" ? { y: { range: [0, 100] } } : { y: { range: (u, min, max) => [0, Math.max(max * 1.1, 1)] } },
      series: [
        { label: "Время", value: (u, v) => (v === null ? "—" : formatDateTime(new Date(v * 1000))) },
        ...lines.map((line, i) => ({
          label: line.name,
          stroke: PALETTE[i % PALETTE.length],
          width: 2,
          // Buckets without runs are null; joining across them keeps sparse schedules readable.
          spanGaps: true,
          points: { show: true, size: 5 },
          value: (u, v) => (v === null || v === undefined ? "—" : this.format(v)),
        })),
      ],
      axes: [
        { values: (u, splits) => splits.map((v) => formatAxisTime(new Date(v * 1000), long)) },
        { values: (u, splits) => splits.map((v) => this.format(v)), size: 70 },
      ],
    };
    const data = [xs, ...lines.map((line) => line[this.metric])];
    this.plot = new window.uPlot(options, data, this.body);
  }
}

export class ChartsView {
  constructor() {
    this.window = "24h";
    this.names = new Map();
    this.retry = null;
    this.error = byId("charts-error");
    this.charts = [
      new Chart("chart-success", "success", (v) => `${formatDecimal(v)} %`),
      new Chart("chart-duration", "duration", (v) => formatDuration(v)),
      new Chart("chart-rows", "rows", (v) => formatInt(v)),
    ];
    this.buttons = [...document.querySelectorAll("[data-window]")];
    for (const button of this.buttons) {
      button.addEventListener("click", () => {
        this.window = button.dataset.window;
        for (const other of this.buttons) other.setAttribute("aria-pressed", String(other === button));
        this.load();
      });
    }
  }

  /** Display names for the legends (the series name integrations by id). */
  setIntegrations(integrations) {
    this.names = new Map(integrations.map((i) => [i.id, i.name]));
  }

  /** Forget a pending re-ask (sign-out). */
  cancelRetry() {
    clearTimeout(this.retry);
  }

  /**
   * Fetch and draw the series. The sidecar caches these aggregates for a few seconds, so an
   * answer computed before `notBefore` (a sync that just ended) is drawn and asked again.
   * @param {{notBefore?: Date|null}} [options]
   */
  async load({ notBefore = null } = {}) {
    clearTimeout(this.retry);
    const { bucket, long } = WINDOWS[this.window];
    try {
      const answer = await api("/stats/series", { query: { window: this.window, bucket } });
      const columns = toColumns(answer, this.names);
      for (const chart of this.charts) chart.draw(columns, long);
      setMessage(this.error, "");
      const computedAt = parseTime(answer.until);
      if (notBefore && computedAt && computedAt < notBefore && Date.now() - notBefore < STALE_RETRY_FOR_MS) {
        this.retry = setTimeout(() => this.load({ notBefore }), STALE_RETRY_MS);
      }
    } catch (error) {
      setMessage(this.error, `Не удалось загрузить графики: ${error.message}`);
    }
  }
}

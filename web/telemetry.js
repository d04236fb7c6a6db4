// Device page telemetry section (views/telemetry.templ): one uPlot chart per
// metric over a chosen time range, drag-to-zoom, live points from the device
// stream, the latest messages, and download links for the range shown.
//
// Data comes from the section's URLs (handlers/api_telemetry.go):
//   data-readings-url ?metric=&from=&to=&points=  → {"buckets": [{"t": ms, "min", "max", "avg", "count"}]}
//   data-readings-url ?metric=&format=csv|json&from=&to=  → raw readings (downloads)
//   data-messages-url ?limit=  → {"messages": [message, …]}, newest first
// and from the events web/device.js re-dispatches from the device stream:
//   live:reading  {"t": <unix ms>, "v": {"metric": number, …}}
//   live:message  a message, as the messages API lists it (live.MessageEvent)
//   live:resync   events were missed: reload everything
import uPlot from 'uplot';
import { fetchWithCSRF } from './csrf.js';
import { themeChangeEvent } from './theme.js';
import { showToast } from './toast.js';

const presets = {
  '15m': 15 * 60e3,
  '1h': 3600e3,
  '6h': 6 * 3600e3,
  '24h': 24 * 3600e3,
  '7d': 7 * 24 * 3600e3,
  '30d': 30 * 24 * 3600e3,
  '90d': 90 * 24 * 3600e3,
  '1y': 365 * 24 * 3600e3,
};
// What a chart's buckets were read from (the readings API's "tier"): raw
// readings, or the 1-minute or 1-hour rollups kept beyond them.
const tierLabels = {
  '1m': 'Older than the raw readings kept: min, max and average per minute',
  '1h': 'Older than the raw readings kept: min, max and average per hour',
};
// "fit" spans the device's readings of the last 7 days up to now, so fresh
// data is not a sliver at the right edge of an hour.
const defaultRange = 'fit';
const plotHeight = 280;
// Below this many points in view a series draws a marker at every point, so
// a lone reading is a visible dot rather than nothing.
const markerPoints = 120;
const maxMessages = 20;
const maxCharts = 48;
// Points kept per chart while live; older ones scroll off the window anyway.
const maxLivePoints = 20000;

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function palette() {
  const colors = [];
  for (let i = 1; i <= 6; i++) colors.push(cssVar(`--chart-${i}`, '#2563eb'));
  return {
    colors,
    text: cssVar('--text-muted', '#666'),
    grid: cssVar('--chart-grid', 'rgba(128,128,128,.2)'),
    font: cssVar('--font', 'system-ui, sans-serif'),
  };
}

/** Adds an alpha channel to a #rrggbb colour; other notations pass through. */
function withAlpha(color, alpha) {
  return /^#[0-9a-f]{6}$/i.test(color) ? color + alpha : color;
}

/** The colour of an alert severity (web/alerts.css), for chart marks. */
function severityColor(severity) {
  return cssVar(`--sev-${severity}`, '#b42318');
}

/** Parses a time as Unix milliseconds: a number (ms) or an RFC 3339 string. */
export function toMillis(t) {
  if (typeof t === 'number') return t;
  if (typeof t === 'string') return Date.parse(t);
  return NaN;
}

/**
 * Normalises a readings response to {xs, avg, min, max} (x in seconds).
 * Accepts {"buckets": […]}, {"readings": […]}, {"points": […]} or an array
 * of buckets ({t|time, avg|value|v, min, max}).
 */
export function parseBuckets(body) {
  const list = Array.isArray(body) ? body : (body?.buckets ?? body?.readings ?? body?.points ?? []);
  const rows = [];
  for (const b of list) {
    const t = toMillis(b?.t ?? b?.time ?? b?.start);
    const avg = b?.avg ?? b?.value ?? b?.v;
    if (!Number.isFinite(t) || typeof avg !== 'number') continue;
    rows.push([t / 1000, avg, typeof b.min === 'number' ? b.min : avg, typeof b.max === 'number' ? b.max : avg]);
  }
  rows.sort((a, b) => a[0] - b[0]);
  return {
    xs: rows.map((r) => r[0]),
    avg: rows.map((r) => r[1]),
    min: rows.map((r) => r[2]),
    max: rows.map((r) => r[3]),
  };
}

/**
 * Breaks the line where readings stop for a while (the device was off):
 * a null after a step much longer than usual makes uPlot leave a gap
 * instead of drawing a straight line across it.
 */
export function withGaps(d) {
  const n = d.xs.length;
  if (n < 3) return d;
  const steps = [];
  for (let i = 1; i < n; i++) steps.push(d.xs[i] - d.xs[i - 1]);
  steps.sort((a, b) => a - b);
  const limit = Math.max(steps[Math.floor(steps.length / 2)] * 5, 1);
  const out = { xs: [d.xs[0]], avg: [d.avg[0]], min: [d.min[0]], max: [d.max[0]] };
  for (let i = 1; i < n; i++) {
    if (d.xs[i] - d.xs[i - 1] > limit && d.avg[i - 1] !== null) {
      out.xs.push(d.xs[i - 1] + limit / 5);
      out.avg.push(null);
      out.min.push(null);
      out.max.push(null);
    }
    out.xs.push(d.xs[i]);
    out.avg.push(d.avg[i]);
    out.min.push(d.min[i]);
    out.max.push(d.max[i]);
  }
  return out;
}

const valueFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const cursorFormat = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: 'numeric',
  hour: 'numeric',
  minute: '2-digit',
  second: '2-digit',
});

// The time axis's labels. uPlot's defaults keep ticks 50 px apart and write
// "11:45am" with a second line at each minute ("12/2/26 11:46am" at the
// first), so when data spans minutes labels of two-digit hours ran into
// each other. Labels here are one line in the reader's locale (the date at
// midnight and for day-sized steps), and ticks are kept at least as far
// apart as the widest label the step can have plus a gap (xAxisSpace).
const tickSeconds = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit', second: '2-digit' });
const tickMinutes = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const tickDays = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const tickGap = 8;

/** The label of a time tick at Unix seconds t, for ticks incr seconds apart. */
export function timeTickLabel(t, incr) {
  const d = new Date(t * 1000);
  const midnight = d.getHours() === 0 && d.getMinutes() === 0 && d.getSeconds() === 0;
  if (incr >= 86400 || (midnight && incr >= 60)) return tickDays.format(d);
  return (incr < 60 ? tickSeconds : tickMinutes).format(d);
}

let measureCtx = null;

/** The width in px of the widest label of formats in font. */
function widestLabel(font, formats) {
  measureCtx ??= document.createElement('canvas').getContext('2d');
  measureCtx.font = font;
  let widest = 0;
  // The widest hours and minutes in 12- and 24-hour locales, and a long date.
  for (const d of [new Date(2026, 11, 22, 23, 58, 58), new Date(2026, 11, 22, 10, 58, 58)]) {
    for (const f of formats) widest = Math.max(widest, measureCtx.measureText(f.format(d)).width);
  }
  return Math.ceil(widest);
}

/**
 * uPlot's space option for the time axis in font: the least distance
 * between ticks. Steps of a minute or more need room for "10:58 PM" (or a
 * date); shorter ones, which a short span on a wide plot gets, for
 * "10:58:58 PM".
 */
export function xAxisSpace(font) {
  const minutes = widestLabel(font, [tickMinutes, tickDays]) + tickGap;
  const seconds = widestLabel(font, [tickSeconds, tickMinutes, tickDays]) + tickGap;
  return (u, axisIdx, min, max, plotDim) => {
    // At the minute labels' spacing, would steps be shorter than a minute?
    const step = ((max - min) * minutes) / Math.max(plotDim, 1);
    return step >= 60 ? minutes : seconds;
  };
}

class Chart {
  constructor(grid, metric, colorIndex, hooks) {
    this.metric = metric;
    this.colorIndex = colorIndex;
    this.hooks = hooks;
    this.data = { xs: [], avg: [], min: [], max: [] };
    this.lastValue = undefined;
    const doc = grid.ownerDocument;
    this.el = doc.createElement('figure');
    this.el.className = 'chart-panel';
    this.el.dataset.testid = 'chart';
    this.el.dataset.metric = metric;
    const caption = doc.createElement('figcaption');
    const title = doc.createElement('span');
    title.className = 'chart-title';
    title.textContent = metric;
    this.readout = doc.createElement('span');
    this.readout.className = 'chart-latest';
    this.readout.dataset.testid = 'chart-latest';
    caption.append(title, this.readout);
    this.plotEl = doc.createElement('div');
    this.plotEl.className = 'chart-plot';
    this.plotEl.dataset.emptyText = 'No readings in this range';
    this.plotEl.setAttribute('role', 'img');
    this.plotEl.setAttribute('aria-label', `${metric} over time`);
    this.el.append(caption, this.plotEl);
    grid.append(this.el);
    this.plot = null;
  }

  /** Number of points on the chart, for tests: data-points on the figure. */
  syncCount() {
    let n = 0;
    for (const v of this.data.avg) if (v !== null) n++;
    this.el.dataset.points = String(n);
    this.el.toggleAttribute('data-empty', n === 0);
  }

  build() {
    this.plot?.destroy();
    const p = palette();
    const color = p.colors[this.colorIndex % p.colors.length];
    const font = `12px ${p.font}`;
    const axis = {
      stroke: p.text,
      font,
      grid: { stroke: p.grid, width: 1 },
      ticks: { stroke: p.grid, width: 1 },
    };
    const band = { stroke: withAlpha(color, '55'), width: 1, points: { show: false } };
    this.plot = new uPlot(
      {
        width: Math.max(this.plotEl.clientWidth, 200),
        height: plotHeight,
        legend: { show: false },
        cursor: {
          drag: { x: true, y: false, setScale: false },
          sync: { key: 'fieldhub-telemetry' },
          points: { size: 6 },
        },
        select: { show: true },
        scales: {
          x: { time: true, range: () => this.hooks.window() },
          y: {
            range: (u, lo, hi) => {
              // The threshold lines stay in view.
              for (const th of this.hooks.marks(this.metric).thresholds) {
                lo = lo == null ? th.value : Math.min(lo, th.value);
                hi = hi == null ? th.value : Math.max(hi, th.value);
              }
              if (lo == null || hi == null) return [0, 1];
              const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.05 || 1;
              return [lo - pad, hi + pad];
            },
          },
        },
        axes: [
          {
            ...axis,
            space: xAxisSpace(font),
            values: (u, splits, axisIdx, space, incr) => splits.map((t) => timeTickLabel(t, incr)),
          },
          { ...axis, size: 60 },
        ],
        series: [
          {},
          // uPlot's default shows the points only while they are sparse, so
          // a single reading is visible as a dot.
          {
            label: this.metric,
            stroke: color,
            width: 1.75,
            points: {
              size: 7,
              fill: color,
              show: (u, si, i0, i1) => {
                let n = 0;
                const ys = u.data[si];
                for (let i = i0; i <= i1 && n <= markerPoints; i++) if (ys[i] != null) n++;
                return n <= markerPoints;
              },
            },
          },
          { label: 'min', ...band },
          { label: 'max', ...band },
        ],
        bands: [{ series: [3, 2], fill: withAlpha(color, '1f') }],
        hooks: {
          setSelect: [
            (u) => {
              if (u.select.width < 4) return;
              const from = u.posToVal(u.select.left, 'x') * 1000;
              const to = u.posToVal(u.select.left + u.select.width, 'x') * 1000;
              u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
              this.hooks.zoom(from, to);
            },
          ],
          setCursor: [(u) => this.showReadout(u.cursor.idx)],
          // The marks of alerts and thresholds; then the time labels' boxes
          // (CSS px) and the span shown (s), on the figure for tests
          // (data-x-labels): e2e/telemetry.test.js checks that the labels
          // do not overlap.
          draw: [(u) => this.drawMarks(u), (u) => this.recordTimeLabels(u, font)],
        },
      },
      [this.data.xs, this.data.avg, this.data.min, this.data.max],
      this.plotEl,
    );
    this.plot.over.addEventListener('dblclick', () => this.hooks.resetZoom());
    this.showReadout(null);
  }

  recordTimeLabels(u, font) {
    const ax = u.axes[0];
    const splits = ax._splits ?? [];
    const labels = ax._values ?? [];
    measureCtx ??= document.createElement('canvas').getContext('2d');
    measureCtx.font = font;
    // One box per line of each label: uPlot's own labels have a second
    // line (the minute, the date) when a larger unit rolls over.
    const boxes = [];
    splits.forEach((t, i) => {
      const text = labels[i];
      if (text == null || text === '') return;
      const mid = u.valToPos(t, 'x');
      String(text)
        .split('\n')
        .forEach((line, row) => {
          if (!line) return;
          const w = measureCtx.measureText(line).width;
          boxes.push({ text: line, row, left: Math.round(mid - w / 2), right: Math.round(mid + w / 2) });
        });
    });
    this.el.dataset.xLabels = JSON.stringify({ span: u.scales.x.max - u.scales.x.min, width: u.bbox.width / devicePixelRatio, boxes });
  }

  /** Shows the value under the cursor, or the newest value. */
  showReadout(idx) {
    if (idx != null && this.data.avg[idx] != null) {
      const t = new Date(this.data.xs[idx] * 1000);
      this.readout.textContent = `${valueFormat.format(this.data.avg[idx])} · ${cursorFormat.format(t)}`;
      return;
    }
    this.readout.textContent = this.lastValue === undefined ? '' : valueFormat.format(this.lastValue);
  }

  /**
   * Replaces the data with a loaded range, keeping the live points that
   * arrived after it while the request was in flight.
   */
  setData(d) {
    const [, to] = this.hooks.window();
    const last = d.xs.length ? d.xs[d.xs.length - 1] : -Infinity;
    // Only live points: the points of an earlier load (a finer range's)
    // would double the readings the new buckets already hold.
    for (const [x, v] of this.liveAdds ?? []) {
      if (x > last && x <= to + 60) {
        d.xs.push(x);
        d.avg.push(v);
        d.min.push(v);
        d.max.push(v);
      }
    }
    this.liveAdds = null;
    this.data = withGaps(d);
    this.lastValue = d.avg.length ? d.avg[d.avg.length - 1] : undefined;
    this.syncCount();
  }

  /** A load starts: live points from now on are kept through its setData. */
  beginLoad() {
    this.liveAdds = [];
  }

  /** Adds one live point, keeping the arrays in time order. */
  addPoint(x, v) {
    this.liveAdds?.push([x, v]);
    const d = this.data;
    let i = d.xs.length;
    while (i > 0 && d.xs[i - 1] > x) i--;
    if (i > 0 && d.xs[i - 1] === x) {
      d.avg[i - 1] = v;
      d.min[i - 1] = Math.min(d.min[i - 1], v);
      d.max[i - 1] = Math.max(d.max[i - 1], v);
    } else {
      d.xs.splice(i, 0, x);
      d.avg.splice(i, 0, v);
      d.min.splice(i, 0, v);
      d.max.splice(i, 0, v);
    }
    if (i >= d.xs.length - 1) this.lastValue = v;
    this.syncCount();
  }

  /** Drops points before x (seconds) that scrolled out of a live window. */
  trim(x) {
    const d = this.data;
    let n = 0;
    while (n < d.xs.length && d.xs[n] < x) n++;
    if (d.xs.length - n > maxLivePoints) n = d.xs.length - maxLivePoints;
    if (n > 0) {
      for (const k of ['xs', 'avg', 'min', 'max']) d[k].splice(0, n);
      this.syncCount();
    }
  }

  /**
   * Draws the marks of the alert rules over the readings: a dashed line at
   * each threshold that applies to the metric, and a vertical line where
   * each alert on it was raised, in its severity's colour. The figure
   * tells tests and screen readers how many it shows.
   */
  drawMarks(u) {
    const { thresholds, alerts } = this.hooks.marks(this.metric);
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const [xMin, xMax] = [u.scales.x.min, u.scales.x.max];
    const dpr = devicePixelRatio || 1;
    ctx.save();
    ctx.lineWidth = 1.5 * dpr;
    ctx.setLineDash([6 * dpr, 4 * dpr]);
    for (const th of thresholds) {
      const y = Math.round(u.valToPos(th.value, 'y', true));
      if (y < top || y > top + height) continue;
      ctx.strokeStyle = severityColor(th.severity);
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
    }
    ctx.setLineDash([]);
    let shown = 0;
    for (const a of alerts) {
      const x = a.t / 1000;
      if (!(x >= xMin && x <= xMax)) continue;
      shown++;
      const px = Math.round(u.valToPos(x, 'x', true));
      ctx.strokeStyle = severityColor(a.severity);
      ctx.beginPath();
      ctx.moveTo(px, top);
      ctx.lineTo(px, top + height);
      ctx.stroke();
      // A small flag at the top says "alert" where lines are many.
      ctx.fillStyle = ctx.strokeStyle;
      ctx.beginPath();
      ctx.moveTo(px, top);
      ctx.lineTo(px + 6 * dpr, top + 4 * dpr);
      ctx.lineTo(px, top + 8 * dpr);
      ctx.fill();
    }
    ctx.restore();
    this.el.dataset.thresholds = String(thresholds.length);
    this.el.dataset.alertMarks = String(shown);
    const parts = [`${this.metric} over time`];
    if (thresholds.length) parts.push(`threshold ${thresholds.map((t) => `${t.op} ${valueFormat.format(t.value)}`).join(', ')}`);
    if (shown) parts.push(`${shown} alert${shown === 1 ? '' : 's'} raised in this range`);
    this.plotEl.setAttribute('aria-label', parts.join('; '));
  }

  redraw() {
    if (!this.plot) {
      this.build();
      return;
    }
    this.plot.setData([this.data.xs, this.data.avg, this.data.min, this.data.max]);
    this.showReadout(this.plot.cursor.idx);
  }

  resize() {
    this.plot?.setSize({ width: Math.max(this.plotEl.clientWidth, 200), height: plotHeight });
  }
}

/** Formats a Date for an <input type="datetime-local"> in local time. */
function localInput(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

const rangeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'short' });

function withQuery(base, params) {
  const u = new URL(base, location.href);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.pathname + u.search;
}

/** Sets up the telemetry section, if the page has one. */
export function initTelemetry(doc) {
  const root = doc.querySelector('[data-telemetry]');
  if (!root) return;
  const gridEl = root.querySelector('[data-telemetry-charts]');
  const readingsURL = root.dataset.readingsUrl;
  const picker = root.querySelector('[data-range-picker]');
  const customForm = root.querySelector('[data-custom-range]');
  const rangeLabel = root.querySelector('[data-range-label]');
  const resetZoomBtn = root.querySelector('[data-reset-zoom]');
  const tierLabel = root.querySelector('[data-tier-label]');

  const charts = new Map();
  // The range: a preset that follows now, or fixed bounds; a zoom overrides
  // it until reset.
  let preset = defaultRange;
  let fixed = null; // {from, to} in ms for a custom range
  let zoom = null; // {from, to} in ms
  let loadGeneration = 0;

  const isLive = () => !zoom && !fixed;
  let fitSpan = presets['1h']; // the "fit" range's span, from fitRange
  const window_ = () => {
    if (zoom) return zoom;
    if (fixed) return fixed;
    const to = Date.now();
    return { from: to - (preset === 'fit' ? fitSpan : presets[preset]), to };
  };

  // fitRange sets the "fit" span from the oldest reading of the last 7
  // days, with a margin; at least 2 minutes, an hour with none. It asks in
  // two steps (7 days in 2,000 buckets, then the bucket found in 2,000
  // more), so a reading a minute old is not placed hours back by the
  // width of a bucket; the first 8 charts stand for the device.
  async function fitRange() {
    const to = Date.now();
    const firstOf = async (from, points) => {
      let first = Infinity;
      await Promise.allSettled(
        [...charts.values()].slice(0, 8).map(async (c) => {
          const url = withQuery(readingsURL, { metric: c.metric, from: new Date(from).toISOString(), to: new Date(to).toISOString(), points: String(points) });
          const res = await fetchWithCSRF(url, { headers: { Accept: 'application/json' } });
          if (!res.ok) return;
          const d = parseBuckets(await res.json());
          if (d.xs.length) first = Math.min(first, d.xs[0] * 1000);
        }),
      );
      return first;
    };
    const week = to - presets['7d'];
    let first = await firstOf(week, 2000);
    if (Number.isFinite(first)) {
      const bucket = presets['7d'] / 2000;
      // The first step's time is its bucket's start, earlier than the reading.
      const exact = await firstOf(Math.max(week, first - bucket), 2000);
      if (Number.isFinite(exact)) first = exact;
    }
    fitSpan = Number.isFinite(first) ? Math.max((to - first) * 1.1, 2 * 60e3) : presets['1h'];
  }

  // The alert rules' marks (handlers/chartmarks.go): thresholds, alerts
  // raised, and each rule's metric for alerts raised while the page is open.
  const marks = { thresholds: [], alerts: [], ruleMetrics: {} };
  try {
    const given = JSON.parse(root.dataset.chartMarks || '{}');
    marks.thresholds = given.thresholds ?? [];
    marks.alerts = given.alerts ?? [];
    marks.ruleMetrics = given.ruleMetrics ?? {};
  } catch {
    // No marks rather than no charts.
  }
  const marksFor = (metric) => ({
    thresholds: marks.thresholds.filter((t) => t.metric === metric),
    alerts: marks.alerts.filter((a) => a.metric === metric),
  });

  const hooks = {
    marks: marksFor,
    window: () => {
      const w = window_();
      return [w.from / 1000, w.to / 1000];
    },
    zoom: (from, to) => {
      if (!(to > from)) return;
      zoom = { from, to };
      update();
    },
    resetZoom: () => {
      if (!zoom) return;
      zoom = null;
      update();
    },
  };

  const chartFor = (metric) => {
    let c = charts.get(metric);
    if (!c && charts.size < maxCharts) {
      root.querySelector('[data-testid="charts-empty"]')?.remove();
      c = new Chart(gridEl, metric, charts.size, hooks);
      charts.set(metric, c);
      if (downloadMetric && ![...downloadMetric.options].some((o) => o.value === metric)) {
        downloadMetric.append(new Option(metric, metric));
        updateDownloads();
      }
    }
    return c;
  };

  const dirty = new Set();
  let frame = 0;
  const schedule = (c) => {
    dirty.add(c);
    if (!frame) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        for (const chart of dirty) chart.redraw();
        dirty.clear();
      });
    }
  };

  async function loadChart(c, gen) {
    c.beginLoad();
    const w = window_();
    const points = Math.min(2000, Math.max(60, Math.round(c.plotEl.clientWidth || 600)));
    const url = withQuery(readingsURL, {
      metric: c.metric,
      from: new Date(w.from).toISOString(),
      to: new Date(w.to).toISOString(),
      points: String(points),
    });
    // Busy while its own request is out: a chart added by a live reading
    // loads outside loadAll.
    c.loads = (c.loads ?? 0) + 1;
    c.el.setAttribute('aria-busy', 'true');
    let body;
    try {
      const res = await fetchWithCSRF(url, { headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(`${c.metric}: status ${res.status}`);
      body = await res.json();
    } finally {
      if (--c.loads === 0) c.el.removeAttribute('aria-busy');
    }
    const data = parseBuckets(body);
    if (gen !== loadGeneration) return; // a newer range was chosen meanwhile
    c.el.dataset.tier = body?.tier ?? 'raw';
    c.setData(data);
    schedule(c);
  }

  // One line says when the charts show rollups rather than raw readings.
  function showTier() {
    if (!tierLabel) return;
    const tiers = new Set([...charts.values()].map((c) => c.el.dataset.tier).filter(Boolean));
    const tier = tiers.has('1h') ? '1h' : tiers.has('1m') ? '1m' : 'raw';
    tierLabel.textContent = tierLabels[tier] ?? '';
    tierLabel.hidden = !tierLabels[tier];
    root.dataset.tier = tier;
  }

  async function loadAll() {
    const gen = ++loadGeneration;
    root.dataset.loading = 'true';
    const results = await Promise.allSettled([...charts.values()].map((c) => loadChart(c, gen)));
    if (gen !== loadGeneration) return;
    delete root.dataset.loading;
    showTier();
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length) showToast(`Could not load telemetry (${failed[0].reason.message}).`, 'error', doc);
  }

  function updateControls() {
    for (const btn of picker.querySelectorAll('[data-range]')) {
      const key = btn.dataset.range;
      const on = key === 'custom' ? fixed !== null : !fixed && key === preset;
      btn.setAttribute('aria-pressed', String(on));
    }
    const w = window_();
    if (zoom) {
      rangeLabel.textContent = `Zoomed to ${rangeFormat.format(new Date(w.from))} – ${rangeFormat.format(new Date(w.to))}`;
    } else if (fixed) {
      rangeLabel.textContent = `${rangeFormat.format(new Date(w.from))} – ${rangeFormat.format(new Date(w.to))}`;
    } else if (preset === 'fit') {
      rangeLabel.textContent = `Live, since ${rangeFormat.format(new Date(w.from))}`;
    } else {
      rangeLabel.textContent = 'Live';
    }
    rangeLabel.dataset.live = String(isLive());
    rangeLabel.dataset.from = String(Math.round(w.from)); // for tests: the range's start, Unix ms
    resetZoomBtn.hidden = !zoom;
    updateDownloads();
  }

  // Downloads export the chosen metric's raw readings in the range shown.
  const downloads = root.querySelector('[data-downloads]');
  const downloadMetric = root.querySelector('[data-download-metric]');
  function updateDownloads() {
    const metric = downloadMetric?.value;
    if (downloads) downloads.hidden = !metric;
    if (!metric) return;
    const w = window_();
    for (const a of root.querySelectorAll('[data-download]')) {
      a.href = withQuery(readingsURL, {
        metric,
        format: a.dataset.download,
        from: new Date(w.from).toISOString(),
        to: new Date(w.to).toISOString(),
      });
    }
  }
  downloadMetric?.addEventListener('change', updateDownloads);
  // The links keep the range of the moment they were drawn; refresh a
  // live range's end just before a click follows one.
  for (const a of root.querySelectorAll('[data-download]')) {
    a.addEventListener('pointerdown', updateDownloads);
    a.addEventListener('keydown', updateDownloads);
  }

  function update() {
    updateControls();
    loadAll();
  }

  picker.addEventListener('click', (evt) => {
    const btn = evt.target.closest('[data-range]');
    if (!btn) return;
    const key = btn.dataset.range;
    if (key === 'custom') {
      const open = customForm.hidden;
      customForm.hidden = !open;
      btn.setAttribute('aria-expanded', String(open));
      if (open) {
        const w = window_();
        // The inputs hold whole seconds: the end rounds up (the start
        // down, in localInput), so that the range holds every reading
        // shown, the newest second's too.
        customForm.elements.from.value = localInput(w.from);
        customForm.elements.to.value = localInput(Math.ceil(w.to / 1000) * 1000);
        customForm.elements.from.focus();
      }
      return;
    }
    preset = key;
    fixed = null;
    zoom = null;
    customForm.hidden = true;
    picker.querySelector('[data-range="custom"]')?.setAttribute('aria-expanded', 'false');
    if (key === 'fit') fitRange().then(update);
    else update();
  });

  customForm.addEventListener('submit', (evt) => {
    evt.preventDefault();
    const from = new Date(customForm.elements.from.value).getTime();
    const to = new Date(customForm.elements.to.value).getTime();
    if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) {
      showToast('Choose a “to” time after the “from” time.', 'error', doc);
      return;
    }
    fixed = { from, to };
    zoom = null;
    update();
  });

  resetZoomBtn.addEventListener('click', () => hooks.resetZoom());

  // Live points. Points outside the window (a zoomed or fixed range) are
  // not drawn; the next load picks them up.
  doc.addEventListener('live:reading', (evt) => {
    const r = evt.detail;
    const t = toMillis(r?.t);
    if (!Number.isFinite(t) || !r.v || typeof r.v !== 'object') return;
    const w = window_();
    for (const [metric, value] of Object.entries(r.v)) {
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      const isNew = !charts.has(metric);
      const c = chartFor(metric);
      if (!c) continue;
      // A metric new to this page may have history in the range already.
      if (isNew) loadChart(c, loadGeneration).catch(() => {});
      if (isLive() && t >= w.from && t <= w.to + 60e3) {
        c.addPoint(t / 1000, value);
        schedule(c);
      }
    }
  });

  // A live window slides with the clock even when nothing arrives.
  setInterval(() => {
    if (!isLive() || doc.hidden) return;
    const from = window_().from / 1000;
    for (const c of charts.values()) {
      c.trim(from);
      schedule(c);
    }
  }, 5000);

  // An alert raised on a charted metric is marked at once.
  doc.addEventListener('live:alert', (evt) => {
    const a = evt.detail?.alert;
    const metric = a && marks.ruleMetrics[a.ruleId];
    if (!metric || a.state !== 'active' || a.count !== 1) return;
    const t = toMillis(a.firstAt);
    if (!Number.isFinite(t) || marks.alerts.some((m) => m.t === t && m.metric === metric)) return;
    marks.alerts.push({ metric, t, severity: a.severity, rule: evt.detail.ruleName ?? '' });
    const c = charts.get(metric);
    if (c) schedule(c);
  });

  doc.addEventListener('live:resync', () => {
    loadAll();
    loadMessages(root, doc);
  });
  doc.addEventListener(themeChangeEvent, () => {
    for (const c of charts.values()) c.build();
  });
  new ResizeObserver(() => {
    for (const c of charts.values()) c.resize();
  }).observe(gridEl);

  let metrics = [];
  try {
    metrics = JSON.parse(root.dataset.metrics || '[]');
  } catch {
    metrics = [];
  }
  for (const m of metrics) chartFor(m);
  updateControls();
  if (preset === 'fit') fitRange().then(update);
  else loadAll();

  initMessages(root, doc);
}

// ---------- Latest messages ----------

const byteFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

function formatSize(n) {
  if (n < 1024) return `${n} B`;
  return `${byteFormat.format(n / 1024)} KB`;
}

/** Decodes base64 to text when it is UTF-8, else returns null. */
function decodeBase64Text(b64) {
  try {
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** Pretty-prints JSON text; other text is returned as it is. */
export function prettyBody(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return JSON.stringify(JSON.parse(trimmed), null, 2);
    } catch {
      // Not JSON after all (or cut off): show it raw.
    }
  }
  return text;
}

/**
 * Reads a message as the messages API and the live "message" event give it:
 * {id, enqueuedTime, messageId, contentType, properties, body, bodyBase64: bool,
 * size?, truncated?, propertiesTruncated?}.
 */
function normaliseMessage(m) {
  let body = typeof m.body === 'string' ? m.body : '';
  let binary = false;
  let size = m.size;
  if (m.bodyBase64 === true) {
    const text = decodeBase64Text(body);
    size ??= Math.floor((body.length * 3) / 4) - (body.endsWith('==') ? 2 : body.endsWith('=') ? 1 : 0);
    binary = text === null;
    body = text ?? '';
  }
  return {
    seq: m.id ?? m.seq,
    time: m.enqueuedTime ?? m.enqueuedAt,
    messageId: m.messageId ?? '',
    contentType: m.contentType ?? '',
    properties: m.properties ?? {},
    size: size ?? new TextEncoder().encode(body).length,
    truncated: Boolean(m.truncated),
    propertiesTruncated: Boolean(m.propertiesTruncated),
    body,
    binary,
  };
}

function renderMessage(doc, m) {
  const li = doc.createElement('li');
  li.className = 'message';
  li.dataset.testid = 'message';
  if (m.seq !== undefined) li.dataset.seq = String(m.seq);

  const meta = doc.createElement('div');
  meta.className = 'message-meta';
  const time = doc.createElement('time');
  const when = new Date(toMillis(m.time));
  if (!Number.isNaN(when.getTime())) {
    time.dateTime = when.toISOString();
    time.textContent = timeFormat.format(when);
  }
  meta.append(time);
  if (m.messageId) {
    const id = doc.createElement('span');
    id.className = 'mono';
    id.textContent = m.messageId;
    id.title = 'Message id';
    meta.append(id);
  }
  const info = doc.createElement('span');
  info.className = 'muted';
  info.textContent = [m.contentType, formatSize(m.size)].filter(Boolean).join(' · ');
  meta.append(info);
  li.append(meta);

  const props = Object.entries(m.properties);
  if (props.length) {
    const ul = doc.createElement('ul');
    ul.className = 'tags';
    ul.setAttribute('aria-label', 'Properties');
    for (const [k, v] of props) {
      const tag = doc.createElement('li');
      tag.className = 'tag';
      const b = doc.createElement('b');
      b.textContent = k;
      tag.append(b, `=${v}`);
      ul.append(tag);
    }
    if (m.propertiesTruncated) {
      const more = doc.createElement('li');
      more.className = 'tag muted';
      more.dataset.testid = 'properties-truncated';
      more.textContent = '… more properties in the message log';
      ul.append(more);
    }
    li.append(ul);
  }

  const pre = doc.createElement('pre');
  pre.className = 'message-body';
  pre.dataset.testid = 'message-body';
  if (m.binary) {
    pre.textContent = `(${formatSize(m.size)} of binary data)`;
    pre.classList.add('muted');
  } else {
    pre.textContent = prettyBody(m.body) + (m.truncated ? '\n… (cut off; the full body is in the message log)' : '');
  }
  li.append(pre);
  return li;
}

function messageList(root) {
  return root.querySelector('[data-messages]');
}

function showMessages(root, doc, messages, { prepend }) {
  const list = messageList(root);
  if (!list) return;
  const seen = new Set([...list.querySelectorAll('[data-seq]')].map((li) => li.dataset.seq));
  const fresh = messages.map(normaliseMessage).filter((m) => m.seq === undefined || !seen.has(String(m.seq)));
  if (!fresh.length) return;
  list.querySelector('[data-messages-empty]')?.remove();
  const items = fresh.map((m) => renderMessage(doc, m));
  if (prepend) {
    list.prepend(...items);
  } else {
    list.append(...items);
  }
  while (list.children.length > maxMessages) list.lastElementChild.remove();
}

async function loadMessages(root, doc) {
  const url = root.dataset.messagesUrl;
  if (!url) return;
  try {
    const res = await fetchWithCSRF(withQuery(url, { limit: String(maxMessages) }), {
      headers: { Accept: 'application/json' },
    });
    if (!res.ok) throw new Error(`status ${res.status}`);
    const body = await res.json();
    const list = Array.isArray(body) ? body : (body.messages ?? []);
    // Newest first from the API; live ones that arrived meanwhile stay on top.
    const current = messageList(root);
    const newestShown = Number(current?.querySelector('[data-seq]')?.dataset.seq ?? -Infinity);
    const older = list.filter((m) => !(Number(m.seq ?? m.id) > newestShown));
    showMessages(root, doc, older, { prepend: false });
    const newer = list.filter((m) => Number(m.seq ?? m.id) > newestShown).reverse();
    for (const m of newer) showMessages(root, doc, [m], { prepend: true });
  } catch (err) {
    showToast(`Could not load the latest messages (${err.message}).`, 'error', doc);
  }
}

function initMessages(root, doc) {
  doc.addEventListener('live:message', (evt) => {
    if (evt.detail) showMessages(root, doc, [evt.detail], { prepend: true });
  });
  loadMessages(root, doc);
}

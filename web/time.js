// Relative times ("5 min ago"). The server renders the same text with the same
// rules (views/format.go), and this module keeps it current without reloads.

/** Formats date relative to now; must match views.relativeTime. */
export function relativeTime(date, now = new Date()) {
  if (!(date instanceof Date) || Number.isNaN(date.getTime()) || date.getTime() <= 0) {
    return 'never';
  }
  const s = Math.floor((now.getTime() - date.getTime()) / 1000);
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ago`;
  const d = Math.floor(h / 24);
  if (d < 30) return `${d} d ago`;
  return date.toISOString().slice(0, 10);
}

/** Rewrites one <time data-relative datetime="…"> element. */
export function refreshTime(el, now = new Date()) {
  const iso = el.getAttribute('datetime');
  el.textContent = iso ? relativeTime(new Date(iso), now) : 'never';
}

/** Keeps every <time data-relative> in the document current. */
export function initRelativeTimes(doc, intervalMs = 15000) {
  const tick = () => {
    const now = new Date();
    for (const el of doc.querySelectorAll('time[data-relative]')) refreshTime(el, now);
  };
  setInterval(tick, intervalMs);
}

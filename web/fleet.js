// Fleet page: live status and last-activity updates for the devices on the
// current page, and live summary counts.
//
// Stream contract (the fleet table's data-stream-url):
//   event: device  data: {"id": "dev1", "status": "online"|"offline"|"disabled",
//                         "lastActivity": "<RFC 3339>"}   (fields optional but id)
//   event: stats   data: {"total": n, "online": n, "offline": n, "disabled": n,
//                         "messagesPerMinute": x}
//   event: resync  data: {}   (events were missed and cannot be replayed)
// With 10,000 devices most events are for rows not on this page; they cost one
// Map lookup. DOM writes are batched to one per animation frame.
import { setWorst } from './alerts.js';
import { showLiveState, subscribe } from './live.js';
import { refreshTime } from './time.js';
import { showToast } from './toast.js';

const statusLabels = { online: 'Online', offline: 'Offline', disabled: 'Disabled' };

/** Updates a status badge (views.StatusBadge markup) in place. */
export function setBadge(badge, status) {
  if (!badge || !statusLabels[status] || badge.dataset.status === status) return;
  badge.dataset.status = status;
  badge.textContent = statusLabels[status];
}

/** Updates a <time data-relative> element to a new instant. */
export function setTime(el, iso) {
  if (!el || !iso) return;
  el.setAttribute('datetime', iso);
  el.title = new Date(iso).toLocaleString();
  refreshTime(el);
}

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export function initFleet(doc) {
  const table = doc.querySelector('[data-fleet-table]');
  // The filter form is submitted with its button only: submitting on
  // <select> change would navigate away while a keyboard user is still
  // arrowing through the options.

  const url = table?.dataset.streamUrl;
  if (!url) return;

  const rows = new Map();
  for (const row of table.querySelectorAll('tr[data-device-id]')) rows.set(row.dataset.deviceId, row);

  const pending = new Map();
  let stats = null;
  let frame = 0;
  const flush = () => {
    frame = 0;
    for (const [id, ev] of pending) {
      const row = rows.get(id);
      if (ev.status) setBadge(row.querySelector('[data-status]'), ev.status);
      if (ev.lastActivity) setTime(row.querySelector('time[data-relative]'), ev.lastActivity);
    }
    pending.clear();
    if (stats) {
      for (const [key, value] of Object.entries(stats)) {
        const el = doc.querySelector(`[data-stat="${key}"]`);
        if (el && typeof value === 'number') el.textContent = numberFormat.format(value);
      }
      stats = null;
    }
  };
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(flush);
  };

  subscribe(
    url,
    {
      device(ev) {
        if (!ev || !rows.has(ev.id)) return;
        pending.set(ev.id, { ...pending.get(ev.id), ...ev });
        schedule();
      },
      stats(ev) {
        stats = { ...stats, ...ev };
        schedule();
      },
      storage(ev) {
        doc.dispatchEvent(new CustomEvent('live:storage', { detail: ev }));
      },
      // Every page's header counts open alerts (web/alerts.js); rows show
      // their device's worst open severity.
      alert(ev) {
        doc.dispatchEvent(new CustomEvent('live:alert', { detail: ev }));
        const row = rows.get(ev?.alert?.deviceId);
        if (row) setWorst(row.querySelector('[data-worst-severity]'), ev.deviceWorst);
      },
      // The server could not replay what this page missed (it was away too
      // long): reload, unless the user is in the middle of something.
      resync() {
        const busy = doc.activeElement?.matches?.('input, select, textarea') || doc.querySelector('details[open]');
        if (busy) {
          showToast('Some live updates were missed. Reload the page to catch up.', 'info', doc);
        } else {
          location.reload();
        }
      },
    },
    { onState: showLiveState(doc.querySelector('[data-live-status]')) },
  );
}

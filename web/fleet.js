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
  let live = startLive(doc);
  initSearch(doc, () => {
    live?.close();
    live = startLive(doc);
  });
}

/**
 * Subscribes the fleet table on the page to its live stream.
 * @returns {{close(): void} | null}
 */
function startLive(doc) {
  const table = doc.querySelector('[data-fleet-table]');
  const url = table?.dataset.streamUrl;
  if (!url) return null;

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

  return subscribe(
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

// Search as you type. The filter form stays a plain GET form (it works
// without JavaScript); with it, typing, a changed status or page size and
// the Filter button fetch only the results part of the page
// (views.FleetResults) and swap it in: the search field keeps focus and
// what is typed, the address follows with history.replaceState.
const searchDelayMs = 250;
// A device query is longer and is wrong while half typed: wait for a pause.
const queryDelayMs = 600;

/** Whether text reads as a whole device query (SELECT … FROM …); "select pump" does not. */
export function looksLikeQuery(text) {
  return /^\s*select[\s*][\s\S]*\bfrom\b/i.test(text);
}

/** The 1-based column a query error names ("… at column 23: …"), or 0. */
export function errorColumn(message) {
  const m = /\bat (?:line 1, )?column (\d+)\b/.exec(message);
  return m ? Number(m[1]) : 0;
}

/** The fleet page address the filter form asks for, defaults left out. */
export function filterURL(form) {
  const params = new URLSearchParams();
  for (const [name, raw] of new FormData(form)) {
    const value = typeof raw === 'string' ? raw.trim() : '';
    const field = form.elements.namedItem(name);
    if (value === '' || value === field?.dataset?.default) continue;
    params.append(name, value);
  }
  const query = params.toString();
  return form.getAttribute('action') + (query ? `?${query}` : '');
}

function initSearch(doc, onSwap) {
  const form = doc.querySelector('[data-fleet-filter]');
  if (!form || !doc.querySelector('[data-fleet-results]')) return;
  const input = form.querySelector('input[name="q"]');
  const problem = form.querySelector('[data-fleet-search-error]');
  const announce = doc.querySelector('[data-fleet-announce]');
  const queryMode = form.querySelector('[data-fleet-query-mode]');
  // The address of the results on the page; none when the page came with
  // a refused query, so that running it again says why again.
  let shown = input?.getAttribute('aria-invalid') === 'true' ? null : filterURL(form);
  let timer = 0;
  let inflight = null;
  // Set by Enter or the Filter button: a query error then puts the caret
  // where the mistake is.
  let submitted = false;

  const showProblem = (message) => {
    problem.textContent = message;
    problem.hidden = !message;
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
    const column = errorColumn(message);
    if (submitted && queryMode?.checked && column > 0 && doc.activeElement === input) {
      input.setSelectionRange(column - 1, column - 1);
    }
    submitted = false;
  };

  // The hint and the placeholder say what the field takes in each mode.
  const simplePlaceholder = 'site=berlin, or part of an id or name';
  const queryPlaceholder = "tags.site = 'berlin' AND properties.reported.firmware < '2.0'";
  const showMode = () => {
    const advanced = Boolean(queryMode?.checked);
    for (const hint of form.querySelectorAll('[data-search-hint]')) hint.hidden = (hint.dataset.searchHint === 'query') !== advanced;
    input.placeholder = advanced ? queryPlaceholder : simplePlaceholder;
  };

  async function refresh() {
    clearTimeout(timer);
    const url = filterURL(form);
    inflight?.abort();
    inflight = null;
    form.removeAttribute('aria-busy');
    if (url === shown) {
      showProblem('');
      return;
    }
    const ctl = new AbortController();
    inflight = ctl;
    form.setAttribute('aria-busy', 'true');
    try {
      const res = await fetch(url, { headers: { 'X-Fieldhub-Fragment': 'fleet-results' }, signal: ctl.signal });
      const body = await res.text();
      if (!res.ok) {
        // A search that cannot be run (422: what is wrong with it): say so
        // beside the field and keep the last results.
        showProblem(body.trim() || `The search failed (${res.status}).`);
        return;
      }
      const tpl = doc.createElement('template');
      tpl.innerHTML = body;
      const fresh = tpl.content.querySelector('[data-fleet-results]');
      if (!fresh) {
        location.assign(url); // signed out meanwhile: the full page says why
        return;
      }
      showProblem('');
      doc.querySelector('[data-fleet-results]').replaceWith(fresh);
      shown = url;
      history.replaceState(history.state, '', url);
      const total = Number(fresh.dataset.total);
      if (announce) announce.textContent = `${numberFormat.format(total)} ${total === 1 ? 'device matches' : 'devices match'}`;
      onSwap();
    } catch (err) {
      if (err.name !== 'AbortError') showToast(`The search failed: ${err.message}`, 'error', doc);
    } finally {
      if (inflight === ctl) {
        inflight = null;
        form.removeAttribute('aria-busy');
      }
    }
  }

  input?.addEventListener('input', () => {
    if (queryMode && !queryMode.checked && looksLikeQuery(input.value)) {
      queryMode.checked = true;
      showMode();
    }
    clearTimeout(timer);
    timer = setTimeout(refresh, queryMode?.checked ? queryDelayMs : searchDelayMs);
  });
  for (const select of form.querySelectorAll('select')) select.addEventListener('change', refresh);
  queryMode?.addEventListener('change', () => {
    showMode();
    refresh();
  });
  form.addEventListener('submit', (evt) => {
    evt.preventDefault();
    submitted = true;
    refresh();
  });
}

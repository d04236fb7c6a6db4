// Device page: one SSE stream for the device, its status badge and last
// activity kept current.
//
// The page's [data-device-stream] element names the stream (data-stream-url).
// Its events are re-dispatched on document as CustomEvent "live:<type>"
// (detail = parsed data) so other page modules (telemetry, commands) listen
// without opening a second connection. The types forwarded are those the
// page lists in data-stream-events (space separated), rendered from the Go
// contract live.DeviceStreamEvents (live/events.go, which also describes
// every payload); this module handles:
//
//   event: device      data: {"id": …, "status": …, "lastActivity": "<RFC 3339>"}
//   event: connection  data: {"connected", "protocol", "remote", "at", "node"?}: the header's connection line
//   event: reading     data: {"t": Unix ms, "v": {metric: value}}: the header's tiles
import { setBadge, setTime } from './fleet.js';
import { showLiveState, subscribe } from './live.js';

export function initDevice(doc) {
  doc.addEventListener('live:device', (evt) => {
    const ev = evt.detail ?? {};
    if (ev.status) {
      for (const badge of doc.querySelectorAll('[data-device-status]')) setBadge(badge, ev.status);
    }
    if (ev.lastActivity) {
      for (const el of doc.querySelectorAll('time[data-last-activity]')) setTime(el, ev.lastActivity);
    }
  });

  doc.addEventListener('live:connection', (evt) => showConnection(doc, evt.detail ?? {}));
  doc.addEventListener('live:reading', (evt) => showTiles(doc, evt.detail ?? {}));

  const streamEl = doc.querySelector('[data-device-stream]');
  const url = streamEl?.dataset.streamUrl;
  if (!url) return;
  const types = (streamEl.dataset.streamEvents ?? '').split(/\s+/).filter(Boolean);

  const handlers = {};
  for (const type of types) {
    handlers[type] = (data) => doc.dispatchEvent(new CustomEvent(`live:${type}`, { detail: data }));
  }
  subscribe(url, handlers, { onState: showLiveState(doc.querySelector('[data-live-status]')) });
}

const protocolNames = { mqtt: 'MQTT', 'mqtt-ws': 'MQTT over WebSockets' };

function el(doc, tag, attrs = {}, text) {
  const node = doc.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Whether a live connection event is older news than the connection the
 * header shows: in a cluster (--bus) a device that moves to another node
 * connects there while its old connection closes, and the two events may
 * arrive in either order. A close counts only from the node holding the
 * connection shown, and nothing older than it counts.
 */
export function staleConnectionEvent(shown, ev) {
  if (shown.connected !== 'true') return false;
  if (shown.since && Date.parse(ev.at) < Date.parse(shown.since)) return true;
  return !ev.connected && (ev.node ?? '') !== (shown.node ?? '');
}

/** Rewrites the header's connection line from a live connection event. */
function showConnection(doc, ev) {
  const dd = doc.querySelector('[data-connection]');
  if (!dd || !ev.at || staleConnectionEvent(dd.dataset, ev)) return;
  dd.dataset.node = ev.connected ? (ev.node ?? '') : '';
  dd.dataset.since = ev.connected ? ev.at : '';
  const at = new Date(ev.at);
  const time = el(doc, 'time', { 'data-relative': '', datetime: ev.at, title: at.toLocaleString() }, 'just now');
  dd.dataset.connected = String(Boolean(ev.connected));
  if (ev.connected) {
    const parts = [el(doc, 'strong', {}, 'Connected'), ` over ${protocolNames[ev.protocol] ?? ev.protocol}`];
    if (ev.node) parts.push(' to node ', el(doc, 'span', { class: 'mono', 'data-connection-node': '', 'data-testid': 'device-connection-node' }, ev.node));
    parts.push(' since ', time);
    if (ev.remote) parts.push(' from ', el(doc, 'span', { class: 'mono', 'data-connection-remote': '' }, ev.remote));
    parts.push(' ', el(doc, 'span', { class: 'hint' }, 'Takes direct methods; cloud-to-device messages are pushed.'));
    dd.replaceChildren(...parts);
  } else {
    const closed = el(doc, 'span', { class: 'hint' }, 'Last MQTT connection closed ');
    closed.append(time, '.');
    dd.replaceChildren(
      el(doc, 'strong', {}, 'HTTPS only — polls for messages'),
      ' ',
      closed,
      ' ',
      el(doc, 'span', { class: 'hint' }, 'No live connection: direct methods fail; cloud-to-device messages wait until the device polls.'),
    );
  }
}

const tileFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 4, useGrouping: false });
const maxTiles = 24;

/** Updates (or adds) the header's tile of every metric in a live reading. */
function showTiles(doc, r) {
  const list = doc.querySelector('[data-metric-tiles]');
  if (!list || !r.v || typeof r.v !== 'object') return;
  for (const [name, value] of Object.entries(r.v)) {
    if (typeof value !== 'number' || !Number.isFinite(value)) continue;
    let li = [...list.children].find((c) => c.dataset.tile === name);
    if (!li) {
      if (list.children.length >= maxTiles) continue;
      li = el(doc, 'li', { 'data-tile': name });
      li.append(el(doc, 'span', { class: 'tile-name', title: name }, name), el(doc, 'span', { class: 'tile-value', 'data-tile-value': '' }));
      list.append(li);
    }
    li.querySelector('[data-tile-value]').textContent = tileFormat.format(value);
    let t = li.querySelector('time');
    if (!t) {
      t = el(doc, 'time', { class: 'tile-time', 'data-relative': '' });
      li.append(t);
    }
    const at = new Date(r.t); // Unix ms
    if (Number.isFinite(at.getTime())) {
      t.setAttribute('datetime', at.toISOString());
      t.title = at.toLocaleString();
      t.textContent = 'just now';
    }
  }
}

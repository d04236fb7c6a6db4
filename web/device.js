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
//   event: device   data: {"id": …, "status": …, "lastActivity": "<RFC 3339>"}
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

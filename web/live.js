// Server-sent events with reconnect.
//
// EventSource reconnects by itself after a dropped connection and resends
// Last-Event-ID, so the server can replay what was missed. It gives up for
// good only when the server answers with an error status or a wrong content
// type (readyState CLOSED); then we open a new one after a growing delay, and
// pass the last id as ?lastEventId= because a fresh EventSource has no memory.

const minDelayMs = 1000;
const maxDelayMs = 30000;

/**
 * Subscribes to an SSE stream.
 *
 * @param {string} url stream address
 * @param {Record<string, (data: any, event: MessageEvent) => void>} handlers
 *   event type → handler; data is the parsed JSON payload (events whose data
 *   is not JSON are skipped)
 * @param {{onState?: (state: 'connecting'|'live'|'reconnecting') => void}} [opts]
 * @returns {{close(): void}}
 */
export function subscribe(url, handlers, opts = {}) {
  const onState = opts.onState ?? (() => {});
  let source = null;
  let lastId = '';
  let delay = minDelayMs;
  let timer = 0;
  let closed = false;

  function connect() {
    const u = new URL(url, location.href);
    if (lastId) u.searchParams.set('lastEventId', lastId);
    onState('connecting');
    source = new EventSource(u);
    source.addEventListener('open', () => {
      delay = minDelayMs;
      onState('live');
    });
    source.addEventListener('error', () => {
      if (closed) return;
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        onState('reconnecting');
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, maxDelayMs);
      } else {
        onState('reconnecting');
      }
    });
    for (const [type, handle] of Object.entries(handlers)) {
      source.addEventListener(type, (event) => {
        if (event.lastEventId) lastId = event.lastEventId;
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        handle(data, event);
      });
    }
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      source?.close();
    },
  };
}

/** Shows a stream's state in a [data-live-status] element, if there is one. */
export function showLiveState(el) {
  const labels = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…' };
  return (state) => {
    if (!el) return;
    el.dataset.state = state;
    el.textContent = labels[state] ?? state;
  };
}

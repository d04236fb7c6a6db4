// Device page, Commands section: send cloud-to-device messages, call direct
// methods, edit the twin's desired properties, and follow all three live.
//
// The section ([data-commands]) names its API addresses in data-* attributes.
// Live updates arrive as document events "live:command" (detail {kind: "c2d",
// message} or {kind: "method", call}) and "live:twin", re-dispatched by
// device.js from the page's one SSE stream.
import { fetchWithCSRF } from './csrf.js';
import { showToast } from './toast.js';

/** Parses JSON text; returns {value} or {error} with the parser's message. */
export function parseJSON(text) {
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return { error: err.message };
  }
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The JSON merge patch (RFC 7386) that turns `from` into `to`: changed keys
 * with their new value, removed keys as null, nested objects as nested patches.
 */
export function mergePatch(from, to) {
  const patch = {};
  for (const key of Object.keys(from)) {
    if (!(key in to)) patch[key] = null;
  }
  for (const [key, value] of Object.entries(to)) {
    const old = from[key];
    if (isObject(old) && isObject(value)) {
      const sub = mergePatch(old, value);
      if (Object.keys(sub).length > 0) patch[key] = sub;
    } else if (stableJSON(old) !== stableJSON(value)) {
      patch[key] = value;
    }
  }
  return patch;
}

/** JSON with object keys sorted, so equal values compare equal. */
export function stableJSON(v) {
  if (v === undefined) return '';
  if (Array.isArray(v)) return `[${v.map(stableJSON).join(',')}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJSON(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

function withoutVersion(section) {
  const out = { ...(section ?? {}) };
  delete out.$version;
  return out;
}

async function errorOf(res) {
  try {
    const body = await res.json();
    if (body?.error) return body.error;
  } catch {
    // not JSON: fall through
  }
  return `the server answered ${res.status}`;
}

function el(doc, tag, attrs = {}, text) {
  const node = doc.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- cloud-to-device messages ----

function addPropertyRow(doc, container, key = '', value = '') {
  const row = el(doc, 'div', { class: 'kv-row', 'data-testid': 'c2d-prop-row' });
  const k = el(doc, 'input', { type: 'text', 'aria-label': 'Property name', placeholder: 'name', spellcheck: 'false', 'data-prop-key': '' });
  const v = el(doc, 'input', { type: 'text', 'aria-label': 'Property value', placeholder: 'value', spellcheck: 'false', 'data-prop-value': '' });
  k.value = key;
  v.value = value;
  const remove = el(doc, 'button', { type: 'button', class: 'btn-small', 'aria-label': 'Remove property' }, 'Remove');
  remove.addEventListener('click', () => row.remove());
  row.append(k, v, remove);
  container.append(row);
  k.focus();
}

function relTimeElement(doc, iso) {
  const t = el(doc, 'time', { 'data-relative': '', datetime: iso, title: new Date(iso).toLocaleString() }, 'just now');
  return t;
}

function messageRow(doc, m) {
  const tr = el(doc, 'tr', { 'data-message-id': String(m.id), 'data-testid': 'c2d-row', 'data-updated-at': m.updatedAt ?? '' });
  const sent = el(doc, 'td', { class: 'nowrap', 'data-label': 'Sent' });
  sent.append(relTimeElement(doc, m.enqueuedAt));
  let body = m.bodyEncoding === 'base64' ? '(binary)' : m.body;
  if (body.length > 120) body = `${body.slice(0, 120)}…`;
  const bodyCell = el(doc, 'td', { class: 'mono truncate', title: m.messageId, 'data-label': 'Body' }, body);
  const stateCell = el(doc, 'td', { 'data-label': 'State' });
  stateCell.append(el(doc, 'span', { class: 'state', 'data-state': m.state, 'data-testid': 'c2d-state' }, m.state));
  tr.append(
    sent,
    bodyCell,
    stateCell,
    el(doc, 'td', { 'data-deliveries': '', 'data-label': 'Deliveries' }, String(m.deliveryCount)),
    el(doc, 'td', { class: 'mono', 'data-label': 'Sender' }, m.sender ?? ''),
  );
  return tr;
}

/** Shows message m in the history table: updates its row or adds one on top. */
function showMessage(root, m) {
  const doc = root.ownerDocument;
  const rows = root.querySelector('[data-c2d-rows]');
  if (!rows) return;
  const existing = rows.querySelector(`tr[data-message-id="${CSS.escape(String(m.id))}"]`);
  if (existing) {
    // A view older than the row's is stale: the answer to the send can
    // arrive after the live events of the message's delivery (MQTT pushes
    // at once), and must not set the deliveries back to 0.
    const shown = Date.parse(existing.dataset.updatedAt ?? '');
    const next = Date.parse(m.updatedAt ?? '');
    if (next < shown) return;
    if (m.updatedAt) existing.dataset.updatedAt = m.updatedAt;
    const state = existing.querySelector('[data-state]');
    // Events may arrive out of order after a reconnect; never move back from a final state.
    if (state && !(isFinal(state.dataset.state) && !isFinal(m.state))) {
      state.dataset.state = m.state;
      state.textContent = m.state;
    }
    const deliveries = existing.querySelector('[data-deliveries]');
    if (deliveries) deliveries.textContent = String(m.deliveryCount);
  } else {
    rows.prepend(messageRow(doc, m));
  }
  const empty = root.querySelector('[data-c2d-empty]');
  if (empty) empty.hidden = true;
}

const finalStates = new Set(['completed', 'rejected', 'expired', 'dead', 'purged']);
const isFinal = (s) => finalStates.has(s);

function initMessages(root) {
  const doc = root.ownerDocument;
  const form = root.querySelector('[data-c2d-form]');
  const props = root.querySelector('[data-props]');
  root.querySelector('[data-add-prop]')?.addEventListener('click', () => addPropertyRow(doc, props));
  const bodyError = root.querySelector('[data-body-error]');

  form?.addEventListener('submit', async (evt) => {
    evt.preventDefault();
    const kind = form.querySelector('input[name="kind"]:checked')?.value ?? 'text';
    const text = form.elements.body.value;
    let body = text;
    bodyError.textContent = '';
    if (kind === 'json') {
      const parsed = parseJSON(text);
      if (parsed.error) {
        bodyError.textContent = `Not valid JSON: ${parsed.error}`;
        form.elements.body.focus();
        return;
      }
      body = parsed.value;
    }
    const properties = {};
    for (const row of props.querySelectorAll('.kv-row')) {
      const k = row.querySelector('[data-prop-key]').value.trim();
      const v = row.querySelector('[data-prop-value]').value;
      if (k === '' && v === '') continue;
      if (k === '') {
        bodyError.textContent = 'Every property needs a name.';
        return;
      }
      properties[k] = v;
    }
    // The limits are the server's (package commands), rendered into the form.
    const ttl = form.elements.ttl;
    const ttlSeconds = Number(ttl.value || ttl.defaultValue);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < Number(ttl.min) || ttlSeconds > Number(ttl.max)) {
      bodyError.textContent = `Time to live must be a whole number of seconds from ${ttl.min} to ${ttl.max}.`;
      return;
    }
    const maxBytes = Number(form.elements.body.dataset.maxBytes);
    const bytes = new TextEncoder().encode(typeof body === 'string' ? body : JSON.stringify(body)).length;
    if (bytes > maxBytes) {
      bodyError.textContent = `The body is ${bytes} bytes; a message may have at most ${maxBytes}.`;
      return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const res = await fetchWithCSRF(root.dataset.messagesUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ body, properties, ttlSeconds }),
      });
      if (!res.ok) {
        bodyError.textContent = await errorOf(res);
        return;
      }
      showMessage(root, await res.json());
      form.elements.body.value = '';
      showToast('Message queued.', 'success');
    } catch (err) {
      bodyError.textContent = `Could not send: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });

  root.querySelector('[data-purge]')?.addEventListener('click', async () => {
    if (!confirm('Purge every waiting message of this device?')) return;
    const res = await fetchWithCSRF(root.dataset.messagesUrl, { method: 'DELETE', headers: { Accept: 'application/json' } });
    if (!res.ok) {
      showToast(`Purge failed: ${await errorOf(res)}`, 'error');
      return;
    }
    const { purged } = await res.json();
    showToast(`${purged} message${purged === 1 ? '' : 's'} purged.`, 'success');
  });

  doc.addEventListener('live:command', (evt) => {
    if (evt.detail?.kind === 'c2d' && evt.detail.message) showMessage(root, evt.detail.message);
  });
  // After missed events, reload the history so no state stays stale.
  doc.addEventListener('live:resync', async () => {
    const res = await fetchWithCSRF(`${root.dataset.messagesUrl}?limit=50`, { headers: { Accept: 'application/json' } });
    if (!res.ok) return;
    const { messages } = await res.json();
    for (const m of messages.reverse()) showMessage(root, m);
  });
}

// ---- direct methods ----

function initMethods(root) {
  const doc = root.ownerDocument;
  const form = root.querySelector('[data-method-form]');
  const result = root.querySelector('[data-method-result]');
  const payloadError = root.querySelector('[data-payload-error]');
  if (!form) return;

  form.elements.payload.addEventListener('input', () => {
    const text = form.elements.payload.value.trim();
    payloadError.textContent = text === '' || !parseJSON(text).error ? '' : `Not valid JSON: ${parseJSON(text).error}`;
  });

  const show = (kind, title, payload) => {
    result.hidden = false;
    result.dataset.kind = kind;
    result.replaceChildren(el(doc, 'p', { 'data-testid': 'method-status' }, title));
    if (payload !== undefined) {
      // Focusable: a long answer scrolls, and keyboard users must reach it.
      result.append(
        el(doc, 'pre', { class: 'json', 'data-testid': 'method-payload-out', tabindex: '0', role: 'region', 'aria-label': 'Answer payload' }, JSON.stringify(payload, null, 2)),
      );
    }
  };

  // Every call on this device, by anyone, as the live stream reports it:
  // one line per call, updated from pending to its outcome.
  const calls = root.querySelector('[data-method-calls]');
  doc.addEventListener('live:command', (evt) => {
    const call = evt.detail?.kind === 'method' ? evt.detail.call : null;
    if (!call || !calls) return;
    let li = calls.querySelector(`li[data-call-id="${CSS.escape(call.callId)}"]`);
    if (!li) {
      li = el(doc, 'li', { 'data-call-id': call.callId, 'data-testid': 'method-call' });
      calls.prepend(li);
      while (calls.children.length > 10) calls.lastElementChild.remove();
    }
    li.dataset.state = call.state;
    const outcome = call.state === 'answered' ? `status ${call.status}` : call.state;
    // The time the call started stays; the outcome follows it.
    if (!li.querySelector('time') && call.at) {
      const at = new Date(call.at);
      li.prepend(el(doc, 'time', { datetime: call.at, title: at.toLocaleString(), 'data-testid': 'method-call-time' }, at.toLocaleTimeString()));
    }
    let text = li.querySelector('[data-call-text]');
    if (!text) {
      text = el(doc, 'span', { 'data-call-text': '' });
      li.append(text);
    }
    text.textContent = `${call.name} by ${call.actor}: ${outcome}`;
    root.querySelector('[data-method-calls-section]').hidden = false;
  });

  form.addEventListener('submit', async (evt) => {
    evt.preventDefault();
    // The limits are the server's (package commands), rendered into the form.
    const nameInput = form.elements.name;
    const name = nameInput.value.trim();
    const text = form.elements.payload.value.trim();
    const timeoutInput = form.elements.timeout;
    const timeout = Number(timeoutInput.value || timeoutInput.defaultValue);
    if (name === '') {
      payloadError.textContent = 'Give the method a name.';
      return;
    }
    nameInput.value = name;
    if (!nameInput.checkValidity()) {
      payloadError.textContent = `A method name is ${nameInput.title}.`;
      return;
    }
    const parsed = text === '' ? { value: null } : parseJSON(text);
    if (parsed.error) {
      payloadError.textContent = `Not valid JSON: ${parsed.error}`;
      return;
    }
    if (!Number.isInteger(timeout) || timeout < Number(timeoutInput.min) || timeout > Number(timeoutInput.max)) {
      payloadError.textContent = `The timeout must be a whole number of seconds from ${timeoutInput.min} to ${timeoutInput.max}.`;
      return;
    }
    payloadError.textContent = '';
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    show('pending', `Calling ${name}…`);
    try {
      const res = await fetchWithCSRF(root.dataset.methodsUrl + encodeURIComponent(name), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ payload: parsed.value, responseTimeoutInSeconds: timeout }),
      });
      if (res.ok) {
        const answer = await res.json();
        show('answered', `Status ${answer.status}`, answer.payload);
      } else {
        show('error', await errorOf(res));
      }
    } catch (err) {
      show('error', `Could not call the method: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  });
}

// ---- twin ----

/**
 * The newer of two views of a twin, section by section: the answer to a
 * save can arrive after a live event that already carries the device's
 * next reported properties (or someone else's next desired ones), and must
 * not replace them with older ones. The ETag goes with the desired section
 * kept, since If-Match guards that section.
 */
export function newerTwin(shown, next) {
  if (!shown) return next;
  const version = (t, side) => t?.properties?.[side]?.$version ?? -1;
  const out = { ...next, properties: { ...next.properties } };
  if (version(shown, 'reported') > version(next, 'reported')) out.properties.reported = shown.properties.reported;
  if (version(shown, 'desired') > version(next, 'desired')) {
    out.properties.desired = shown.properties.desired;
    out.etag = shown.etag;
  }
  return out;
}

function initTwin(root) {
  const doc = root.ownerDocument;
  const section = root.querySelector('[data-twin]');
  const dataEl = doc.getElementById('twin-data');
  if (!section || !dataEl) return;
  let twin = parseJSON(dataEl.textContent).value;
  const form = section.querySelector('[data-twin-form]');
  const editor = form.elements.desired;
  const errorEl = section.querySelector('[data-twin-error]');
  // The desired section the editor started from: the patch is computed against
  // it, and its ETag goes into If-Match so a concurrent change is not overwritten.
  let base = { desired: withoutVersion(twin.properties.desired), etag: twin.etag };
  let dirty = false;

  const renderKeys = () => {
    const desired = withoutVersion(twin.properties.desired);
    const reported = withoutVersion(twin.properties.reported);
    const tbody = section.querySelector('[data-twin-keys]');
    const keys = [...new Set([...Object.keys(desired), ...Object.keys(reported)])].sort();
    tbody.replaceChildren(
      ...keys.map((k) => {
        const d = k in desired ? stableJSON(desired[k]) : '';
        const r = k in reported ? stableJSON(reported[k]) : '';
        // Only a desired value the device does not (yet) report differs;
        // a property only the device reports is its own (as the server
        // renders it, handlers.twinPanel).
        const differs = d !== '' && d !== r;
        const tr = el(doc, 'tr', { 'data-key': k, 'data-differs': String(differs) });
        if (differs) tr.className = 'differs';
        tr.append(
          el(doc, 'th', { scope: 'row', class: 'mono' }, k),
          el(doc, 'td', { class: 'mono', 'data-label': 'Desired' }, d || '—'),
          el(doc, 'td', { class: 'mono', 'data-label': 'Reported' }, r || '—'),
        );
        return tr;
      }),
    );
    section.querySelector('[data-desired-version]').textContent = `v${twin.properties.desired.$version}`;
    section.querySelector('[data-reported-version]').textContent = `v${twin.properties.reported.$version}`;
    section.querySelector('[data-twin-reported]').textContent = JSON.stringify(reported, null, 2);
  };

  const loadEditor = () => {
    base = { desired: withoutVersion(twin.properties.desired), etag: twin.etag };
    editor.value = JSON.stringify(base.desired, null, 2);
    dirty = false;
    errorEl.textContent = '';
  };

  const validate = () => {
    const parsed = parseJSON(editor.value);
    if (parsed.error) return `Not valid JSON: ${parsed.error}`;
    if (!isObject(parsed.value)) return 'Desired properties must be a JSON object.';
    return '';
  };

  editor.addEventListener('input', () => {
    dirty = true;
    errorEl.textContent = validate();
  });

  const reload = async () => {
    const res = await fetchWithCSRF(root.dataset.twinUrl, { headers: { Accept: 'application/json' } });
    if (!res.ok) {
      errorEl.textContent = await errorOf(res);
      return;
    }
    twin = newerTwin(twin, await res.json());
    renderKeys();
    loadEditor();
  };
  section.querySelector('[data-twin-reload]')?.addEventListener('click', reload);

  form.addEventListener('submit', async (evt) => {
    evt.preventDefault();
    const problem = validate();
    errorEl.textContent = problem;
    if (problem) return;
    const patch = mergePatch(base.desired, JSON.parse(editor.value));
    if (Object.keys(patch).length === 0) {
      errorEl.textContent = 'Nothing changed.';
      return;
    }
    const res = await fetchWithCSRF(root.dataset.twinUrl, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'If-Match': base.etag },
      body: JSON.stringify(patch),
    });
    if (res.status === 412) {
      errorEl.textContent = 'Someone changed the desired properties meanwhile. Reload to see their change, then apply yours again.';
      return;
    }
    if (!res.ok) {
      errorEl.textContent = await errorOf(res);
      return;
    }
    twin = newerTwin(twin, await res.json());
    renderKeys();
    loadEditor();
    showToast('Desired properties saved.', 'success');
  });

  doc.addEventListener('live:twin', (evt) => {
    twin = newerTwin(twin, evt.detail);
    renderKeys();
    // Keep an edit in progress; its If-Match still names the version it started from.
    if (!dirty) loadEditor();
  });
}

/** Wires the Commands section, if the page has one. */
export function initCommands(doc) {
  const root = doc.querySelector('[data-commands]');
  if (!root) return;
  initMessages(root);
  initMethods(root);
  initTwin(root);
}

// Toasts: short notices in the #toasts live region. The server renders its
// flash message there too (persistent, with a close button); notices raised
// by scripts close themselves unless they report an error, so nobody misses
// a failure.

const autoCloseMs = 6000;

function region(doc) {
  return doc.getElementById('toasts');
}

function closeButton(doc, toast) {
  const btn = doc.createElement('button');
  btn.type = 'button';
  btn.className = 'toast-close';
  btn.setAttribute('aria-label', 'Dismiss');
  btn.textContent = '×';
  btn.addEventListener('click', () => toast.remove());
  return btn;
}

/**
 * Shows a toast.
 * @param {string} message plain text (never HTML)
 * @param {'success'|'error'|'info'} [kind]
 */
export function showToast(message, kind = 'info', doc = document) {
  const list = region(doc);
  if (!list || !message) return;
  const toast = doc.createElement('div');
  toast.className = `toast toast-${kind}`;
  toast.dataset.testid = 'toast';
  toast.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  const text = doc.createElement('span');
  text.textContent = message;
  toast.append(text, closeButton(doc, toast));
  list.append(toast);
  if (kind !== 'error') setTimeout(() => toast.remove(), autoCloseMs);
}

function errorMessage(xhr) {
  const type = xhr.getResponseHeader('Content-Type') ?? '';
  const body = (xhr.responseText ?? '').trim();
  // Our error handler answers htmx requests with a short plain-text reason.
  if (type.startsWith('text/plain') && body && body.length <= 300) return body;
  return `Request failed (${xhr.status}).`;
}

/**
 * Wires server flashes' close buttons and htmx feedback: failed requests,
 * unreachable server, and HX-Trigger: {"toast": "…"} or
 * {"toast": {"message": "…", "kind": "success"}} from a handler.
 */
export function initToasts(doc) {
  for (const toast of doc.querySelectorAll('#toasts .toast')) {
    toast.querySelector('.toast-close')?.addEventListener('click', () => toast.remove());
  }
  doc.addEventListener('htmx:responseError', (evt) => {
    showToast(errorMessage(evt.detail.xhr), 'error', doc);
  });
  doc.addEventListener('htmx:sendError', () => {
    showToast('The hub could not be reached. Check your connection and try again.', 'error', doc);
  });
  doc.addEventListener('toast', (evt) => {
    const d = evt.detail ?? {};
    const message = typeof d.value === 'string' ? d.value : d.message;
    showToast(message, d.kind ?? 'success', doc);
  });
}

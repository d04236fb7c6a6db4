// Alerts: the header's count of open alerts on every page, the fleet rows'
// worst severity, the Alerts page, the device page's alert panel and the
// rule form.
//
// Alert events (live.AlertEvent) arrive as CustomEvent "live:alert" from the
// page's own stream (web/fleet.js, web/device.js):
//   {"alert": {...}, "ruleName": "…", "open": {"critical": n, …}, "deviceWorst": "major" | ""}
// Pages without a stream of their own (the Alerts page, users, audit) open
// the fleet stream for alert events only.
import { subscribe } from './live.js';

const labels = { critical: 'Critical', major: 'Major', minor: 'Minor', warning: 'Warning', info: 'Info' };

/** Shows a device's worst open severity (views.worstSeverity markup). */
export function setWorst(el, severity) {
  if (!el) return;
  el.dataset.severity = severity || '';
  el.textContent = labels[severity] ?? '';
  el.hidden = !labels[severity];
}

function updateCounts(doc, open) {
  const nav = doc.querySelector('[data-alert-counts]');
  if (!nav || !open) return;
  for (const chip of nav.querySelectorAll('[data-severity]')) {
    const n = open[chip.dataset.severity] ?? 0;
    chip.dataset.count = String(n);
    chip.querySelector('[data-n]').textContent = String(n);
    chip.hidden = n === 0;
  }
}

/** Reloads the part of the page marked by selector from url, after a short pause. */
function reloader(doc, selector, url, keep) {
  let timer = 0;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const target = doc.querySelector(selector);
      if (!target) return;
      const resp = await fetch(typeof url === 'function' ? url() : url, { credentials: 'same-origin' });
      if (!resp.ok) return;
      const html = await resp.text();
      const fresh = new DOMParser().parseFromString(html, 'text/html').querySelector(selector);
      if (!fresh) return;
      const state = keep?.save(target);
      target.replaceWith(fresh);
      keep?.restore(fresh, state);
    }, 250);
  };
}

// The checked alerts and the comment survive a reload of the list.
const keepSelection = {
  save(el) {
    return {
      ids: new Set([...el.querySelectorAll('input[name="id"]:checked')].map((i) => i.value)),
      comment: el.querySelector('#bulk-comment')?.value ?? '',
      focus: el.ownerDocument.activeElement?.id,
    };
  },
  restore(el, st) {
    for (const box of el.querySelectorAll('input[name="id"]')) box.checked = st.ids.has(box.value);
    const comment = el.querySelector('#bulk-comment');
    if (comment) comment.value = st.comment;
    if (st.focus) el.ownerDocument.getElementById(st.focus)?.focus();
  },
};

function initAlertsPage(doc) {
  const page = doc.querySelector('[data-alerts-page]');
  if (!page) return;
  doc.addEventListener('change', (e) => {
    if (!e.target.matches('[data-select-all]')) return;
    for (const box of doc.querySelectorAll('[data-alerts-list] input[name="id"]')) box.checked = e.target.checked;
  });
  doc.addEventListener('live:alert', reloader(doc, '[data-alerts-list]', () => location.href, keepSelection));
}

function initDevicePanel(doc) {
  const panel = doc.querySelector('[data-device-alerts]');
  if (!panel) return;
  const deviceId = doc.querySelector('[data-device-id]')?.dataset.deviceId;
  const reload = reloader(doc, '[data-device-alerts]', panel.dataset.deviceAlerts);
  doc.addEventListener('live:alert', (e) => {
    if (e.detail?.alert?.deviceId === deviceId) reload();
  });
}

// The rule form shows the fields of the chosen scope and kind, and asks the
// server how many devices the rule would have an alert on now.
function initRuleForm(doc) {
  const form = doc.querySelector('[data-rule-form]');
  if (!form) return;
  const show = () => {
    const scope = form.querySelector('input[name="scope"]:checked')?.value;
    const kind = form.elements.kind.value;
    for (const el of form.querySelectorAll('[data-when-scope]')) el.hidden = el.dataset.whenScope !== scope;
    for (const el of form.querySelectorAll('[data-when-kind]')) el.hidden = !el.dataset.whenKind.split(' ').includes(kind);
  };
  form.addEventListener('change', show);
  show();
  const out = form.querySelector('[data-rule-preview]');
  const button = form.querySelector('[data-preview-rule]');
  button.hidden = false;
  button.addEventListener('click', async () => {
    out.textContent = 'Checking…';
    const resp = await fetch('/alerts/rules/preview', { method: 'POST', body: new FormData(form), credentials: 'same-origin' });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      out.textContent = body.error ?? 'The rule cannot be previewed.';
      out.dataset.kind = 'error';
      return;
    }
    const n = body.activeDevices;
    out.dataset.kind = 'ok';
    out.textContent = `Would be active now on ${n} device${n === 1 ? '' : 's'}.`;
  });
}

export function initAlerts(doc) {
  doc.addEventListener('live:alert', (e) => updateCounts(doc, e.detail?.open));
  doc.addEventListener('submit', (e) => {
    const msg = e.target.dataset?.confirm;
    if (msg && !window.confirm(msg)) e.preventDefault();
  });
  initAlertsPage(doc);
  initDevicePanel(doc);
  initRuleForm(doc);
  // Pages whose own stream brings alert events: the fleet (with devices)
  // and a device. Any other page with the header follows the fleet stream
  // for alerts only (a filter without devices keeps no device events).
  const ownStream = doc.querySelector('[data-fleet-table][data-stream-url], [data-device-stream][data-stream-url]');
  const hasStream = ownStream && ownStream.dataset.streamUrl;
  if (!hasStream && doc.querySelector('[data-alert-counts]')) {
    subscribe('/api/v1/events?devices=,', {
      alert(ev) {
        doc.dispatchEvent(new CustomEvent('live:alert', { detail: ev }));
      },
    });
  }
}

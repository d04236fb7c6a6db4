// The Jobs pages: live counts from the jobs stream, the device outcomes
// refreshed while a job runs, and the new-job form showing only the fields
// of the chosen kind.
import { subscribe } from './live.js';

const refreshEveryMs = 1000;

/** @param {Document} doc */
export function initJobs(doc) {
  initForm(doc);
  const root = doc.querySelector('[data-jobs-live]');
  if (!root || !root.dataset.jobsLive) return;
  const jobID = root.dataset.jobId || '';
  let refreshTimer = 0;
  let lastDone = -1;

  // What changed between the page's render and the stream's start is
  // fetched once the stream is live, so no event falls in between.
  const catchUp = async () => {
    if (!jobID) return;
    const res = await fetch(`/api/v1/jobs/${encodeURIComponent(jobID)}?limit=1`, { headers: { Accept: 'application/json' } });
    if (res.ok) apply((await res.json()).job);
  };

  const apply = (v) => {
    if (jobID && v.id !== jobID) return;
    const scope = jobID ? root : root.querySelector(`[data-job-id="${CSS.escape(v.id)}"]`);
    if (!scope) return;
    for (const [name, n] of Object.entries(v.counts)) {
      for (const el of scope.querySelectorAll(`[data-count="${name}"]`)) el.textContent = String(n);
    }
    for (const badge of scope.querySelectorAll('.page-header [data-testid="job-status"], td > [data-testid="job-status"]')) {
      if (!jobID || badge.closest('.page-header')) {
        badge.textContent = v.status;
        badge.dataset.status = v.status;
      }
    }
    if (!jobID) return;
    updateBar(root, v.counts);
    const duration = root.querySelector('[data-job-duration]');
    if (duration && v.durationMs != null) duration.textContent = formatDuration(v.durationMs);
    const finished = ['completed', 'cancelled', 'failed'].includes(v.status);
    if (finished) root.querySelector('[data-testid="cancel-job"]')?.remove();
    const done = v.counts.total - v.counts.pending;
    if (done !== lastDone) {
      lastDone = done;
      if (!refreshTimer) {
        refreshTimer = setTimeout(() => {
          refreshTimer = 0;
          refreshDevices(doc);
        }, finished ? 0 : refreshEveryMs);
      }
    }
  };

  subscribe(root.dataset.jobsLive, { job: apply }, {
    onState(state) {
      if (state === 'live') catchUp();
    },
  });
}

function updateBar(root, counts) {
  const bar = root.querySelector('[data-job-bar]');
  if (!bar) return;
  const pct = (n) => (counts.total ? Math.floor((n * 100) / counts.total) : 0);
  bar.querySelector('.job-bar-ok').style.width = `${pct(counts.succeeded)}%`;
  bar.querySelector('.job-bar-failed').style.width = `${pct(counts.failed)}%`;
  bar.setAttribute('aria-valuemax', String(counts.total));
  bar.setAttribute('aria-valuenow', String(counts.total - counts.pending));
}

/** Reloads the table of device outcomes of the page shown. */
async function refreshDevices(doc) {
  const res = await fetch(location.href, { headers: { Accept: 'text/html' } });
  if (!res.ok) return;
  const next = new DOMParser().parseFromString(await res.text(), 'text/html');
  const section = (d) => d.getElementById('job-devices-heading')?.closest('section');
  const now = section(doc);
  const fresh = section(next);
  if (now && fresh) now.replaceWith(fresh);
}

function formatDuration(ms) {
  if (ms <= 0) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}h` : ''}${m}m${s % 60}s`;
}

/** Shows the fields of the kind of job chosen. */
function initForm(doc) {
  const form = doc.querySelector('[data-testid="job-form"]');
  if (!form) return;
  const show = () => {
    const kind = form.querySelector('input[name="type"]:checked')?.value ?? 'method';
    for (const part of form.querySelectorAll('[data-job-part]')) part.hidden = part.dataset.jobPart !== kind;
  };
  form.addEventListener('change', (e) => {
    if (e.target.name === 'type') show();
  });
  show();
}

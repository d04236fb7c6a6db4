// Entry point of the dashboard's JavaScript (built to static/app.js).
// Each concern lives in its own module; page modules run according to
// <body data-page="…">.
import htmx from 'htmx.org';
import { initAlerts } from './alerts.js';
import { initCommands } from './commands.js';
import { installCSRF } from './csrf.js';
import { initCopy } from './copy.js';
import { initDevice } from './device.js';
import { initDisclosures } from './disclosure.js';
import { initFleet } from './fleet.js';
import { initJobs } from './jobs.js';
import { initTheme } from './theme.js';
import { initTelemetry } from './telemetry.js';
import { initStorageBanner } from './storage.js';
import { initTabs } from './tabs.js';
import { initRelativeTimes } from './time.js';
import { initToasts } from './toast.js';
import { initUsers } from './users.js';

// hx-* attributes and extensions look for the global.
window.htmx = htmx;
// We ship the indicator styles in app.css instead of letting htmx inject a
// <style> element.
htmx.config.includeIndicatorStyles = false;

const pages = {
  fleet: initFleet,
  device: initDevice,
  users: initUsers,
  jobs: initJobs,
};

function start() {
  installCSRF(document);
  initTheme(document);
  initToasts(document);
  initCopy(document);
  initDisclosures(document);
  initStorageBanner(document);
  initRelativeTimes(document);
  initTabs(document);
  pages[document.body.dataset.page]?.(document);
  initCommands(document);
  initTelemetry(document);
  initAlerts(document);
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}

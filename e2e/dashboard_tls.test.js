// serve --dashboard-tls in headless Chromium: the dashboard over HTTPS with
// the hub's certificate, sign-in with a Secure session cookie, HSTS, and the
// live stream working over TLS.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cli, launchBrowser, login, startHub, watchPage } from './harness.js';

let hub;
let browser;

before(async () => {
  // Device endpoints on free ports: the defaults may be taken on a shared machine.
  hub = await startHub({ dashboardTLS: true, args: ['--device-addr', '127.0.0.1:0', '--mqtt-addr', ''] });
  // The fleet page streams once it has a device to show.
  await cli(hub.dataDir, 'device', 'add', 'pump-1');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

test('the dashboard is served over HTTPS with Secure cookies and HSTS', { timeout: 60_000 }, async () => {
  assert.match(hub.logs(), /Fieldhub dashboard: https:\/\/127\.0\.0\.1:\d+/);
  assert.doesNotMatch(hub.logs(), /without TLS/);
  // The hub's generated CA is not in Chromium's trust store.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const problems = watchPage(page);
  try {
    const res = await context.request.get(`${hub.url}/login`);
    assert.equal(res.status(), 200);
    assert.equal(res.headers()['strict-transport-security'], 'max-age=31536000');
    assert.equal(res.headers()['cache-control'], 'no-store');

    await login(page, hub.url, 'admin', hub.password);
    assert.equal(new URL(page.url()).pathname, '/devices');
    const session = (await context.cookies()).find((c) => c.name === 'fieldhub_session');
    assert.ok(session, 'no session cookie after signing in');
    assert.equal(session.secure, true);
    // The live stream connects over TLS.
    await page.locator('[data-live-status][data-state="live"]').waitFor({ timeout: 10_000 });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

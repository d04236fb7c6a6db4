// Commands from the device page, end to end in headless Chromium against the
// real binary: an operator sends a cloud-to-device message from the form and
// watches its state change live as a device (plain HTTPS with a SAS token, as
// curl would) takes and completes it; direct methods answer honestly without
// MQTT; the twin editor saves desired properties; a viewer cannot send.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { cli, cliWithInput, freePort, launchBrowser, login, screenshot, startHub, watchPage } from './harness.js';

let hub;
let browser;
let devicePort;
let ca;

before(async () => {
  devicePort = await freePort();
  hub = await startHub({ args: ['--device-addr', `127.0.0.1:${devicePort}`, '--mqtt-addr', '127.0.0.1:0'] });
  await cli(hub.dataDir, 'device', 'add', 'cmd-1');
  await cliWithInput(hub.dataDir, 'operator-pass-1\n', 'user', 'add', '--role', 'operator', '--password-stdin', 'olga');
  await cliWithInput(hub.dataDir, 'viewer-pass-1\n', 'user', 'add', '--role', 'viewer', '--password-stdin', 'vic');
  ca = readFileSync(path.join(hub.dataDir, 'tls', 'ca.pem'));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

/** A device's HTTPS request to the hub's device listener, as curl would make it. */
async function deviceRequest(method, pathAndQuery, token, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: devicePort,
        servername: 'localhost',
        ca,
        method,
        path: pathAndQuery,
        headers: { Authorization: token, ...headers },
      },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  return { context, page, problems: watchPage(page) };
}

test('an operator sends a message and watches it go from queued to completed', { timeout: 120_000 }, async () => {
  const token = (await cli(hub.dataDir, 'device', 'token', 'cmd-1')).trim().split('\n').pop();
  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'olga', 'operator-pass-1');
    await page.goto(`${hub.url}/devices/cmd-1#commands`);
    await page.locator('[data-live-status][data-state="live"]').waitFor({ timeout: 10_000 });
    const form = page.getByTestId('c2d-form');

    // Client-side validation of a JSON body.
    await form.getByTestId('c2d-kind-json').check();
    await form.getByTestId('c2d-body').fill('{"on": tru');
    await form.getByTestId('c2d-send').click();
    await page.locator('[data-body-error]').filter({ hasText: 'Not valid JSON' }).waitFor();
    assert.equal(await page.getByTestId('c2d-row').count(), 0);

    await form.getByTestId('c2d-body').fill('{"on": true}');
    await form.getByTestId('c2d-add-prop').click();
    const prop = form.getByTestId('c2d-prop-row').last();
    await prop.getByLabel('Property name').fill('prio');
    await prop.getByLabel('Property value').fill('high');
    await form.getByTestId('c2d-ttl').fill('600');
    await form.getByTestId('c2d-send').click();

    const row = page.getByTestId('c2d-row').first();
    const state = row.getByTestId('c2d-state');
    await state.filter({ hasText: /^queued$/ }).waitFor({ timeout: 10_000 });
    assert.equal(await row.locator('td').nth(1).textContent(), '{"on":true}');

    // The device polls over HTTPS, any letter case, and gets the message.
    const got = await deviceRequest('GET', '/devices/cmd-1/messages/devicebound?api-version=2021-04-12', token);
    assert.equal(got.status, 200, got.body);
    assert.equal(got.body, '{"on":true}');
    assert.match(got.headers.etag, /^"[0-9a-f-]{36}"$/);
    assert.equal(got.headers['iothub-app-prio'], 'high');
    assert.equal(got.headers['iothub-deliverycount'], '1');
    await state.filter({ hasText: /^locked$/ }).waitFor({ timeout: 10_000 });

    const lock = got.headers.etag.slice(1, -1);
    const done = await deviceRequest('DELETE', `/devices/cmd-1/messages/deviceBound/${lock}?api-version=2021-04-12`, token, {
      'If-Match': got.headers.etag,
    });
    assert.equal(done.status, 204, done.body);
    await state.filter({ hasText: /^completed$/ }).waitFor({ timeout: 10_000 });
    // The lock is spent.
    const again = await deviceRequest('DELETE', `/devices/cmd-1/messages/deviceBound/${lock}`, token);
    assert.equal(again.status, 412);

    // Direct methods need a live MQTT connection; without one the answer is honest.
    const mform = page.getByTestId('method-form');
    await mform.getByTestId('method-name').fill('reboot');
    await mform.getByTestId('method-payload').fill('{"delay": 5}');
    await mform.getByTestId('method-invoke').click();
    await page.getByTestId('method-status').filter({ hasText: 'device not connected' }).waitFor({ timeout: 10_000 });
    // The call's progress also arrives live, for everyone watching the device.
    await page.getByTestId('method-call').filter({ hasText: 'reboot by user:olga: not connected' }).waitFor({ timeout: 10_000 });

    // Desired properties: edit, save with If-Match, see the difference from reported.
    await page.getByTestId('tab-twin').click();
    await page.getByTestId('twin-desired').fill('{"fan": {"speed": 2}}');
    await page.getByTestId('twin-save').click();
    await page.locator('[data-twin-keys] tr[data-key="fan"][data-differs="true"]').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('[data-desired-version]').textContent(), 'v2');
    await screenshot(page, 'commands-operator');
    assert.deepEqual(
      // The honest "not connected" answer is a 404; navigating right after the
      // login aborts that page's remaining requests.
      problems.filter((p) => !/status of 404|net::ERR_ABORTED/.test(p)),
      [],
    );
  } finally {
    await context.close();
  }
});

test('a viewer sees commands but cannot send', { timeout: 60_000 }, async () => {
  const { context, page } = await newPage();
  try {
    await login(page, hub.url, 'vic', 'viewer-pass-1');
    await page.goto(`${hub.url}/devices/cmd-1#commands`);
    assert.equal(await page.getByTestId('commands-readonly').isVisible(), true);
    assert.equal(await page.getByTestId('c2d-send').isDisabled(), true);
    assert.equal(await page.getByTestId('method-invoke').isDisabled(), true);
    assert.equal(await page.getByTestId('twin-save').count(), 0);
    assert.equal(await page.getByTestId('c2d-row').count(), 1, 'the history is visible');
    // The server refuses a viewer even with a valid session and CSRF token.
    const status = await page.evaluate(async () => {
      const token = document.querySelector('meta[name="csrf-token"]').content;
      const res = await fetch('/api/v1/devices/cmd-1/cloud-messages', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token },
        body: JSON.stringify({ body: 'sneaky' }),
      });
      return res.status;
    });
    assert.equal(status, 403);
  } finally {
    await context.close();
  }
});

// Jobs from the Jobs page, end to end in headless Chromium against the real
// binary: an operator runs a direct method on every device a query selects
// and watches the counts and outcomes arrive live (one device connected
// with the unmodified Azure device SDK answers, two HTTPS-only ones fail
// as not connected); a query mistake keeps the form as typed and says
// where; a scheduled job is cancelled after a confirmation; a viewer sees
// no form. axe-core finds nothing serious; screenshots in e2e/artifacts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import deviceSdk from 'azure-iot-device';
import mqttTransport from 'azure-iot-device-mqtt';
import { axeViolations, cli, cliWithInput, freePort, launchBrowser, login, screenshot, startHub, watchPage } from './harness.js';

const { Client } = deviceSdk;
const { Mqtt } = mqttTransport;

let hub;
let browser;
let device;

before(async () => {
  const mqttPort = await freePort();
  hub = await startHub({ args: ['--mqtt-addr', `127.0.0.1:${mqttPort}`, '--device-addr', `127.0.0.1:${await freePort()}`] });
  const cs = (await cli(hub.dataDir, 'device', 'add', '--tags', 'site=berlin', 'pump-1')).trim().split('\n').pop();
  await cli(hub.dataDir, 'device', 'add', '--tags', 'site=berlin', 'pump-2');
  await cli(hub.dataDir, 'device', 'add', '--tags', 'site=berlin', 'pump-3');
  await cli(hub.dataDir, 'device', 'add', '--tags', 'site=paris', 'valve-1');
  await cliWithInput(hub.dataDir, 'operator-pass-1\n', 'user', 'add', '--role', 'operator', '--password-stdin', 'olga');
  await cliWithInput(hub.dataDir, 'viewer-pass-1\n', 'user', 'add', '--role', 'viewer', '--password-stdin', 'vic');
  device = Client.fromConnectionString(cs, Mqtt);
  await device.setOptions({ ca: readFileSync(path.join(hub.dataDir, 'tls', 'ca.pem'), 'utf8') });
  await device.open();
  device.onDeviceMethod('reboot', (request, response) => response.send(200, { rebooting: request.payload }, () => {}));
  browser = await launchBrowser();
});

after(async () => {
  await device?.close();
  await browser?.close();
  await hub?.stop();
});

/**
 * The problems watchPage saw, less requests a navigation aborted (the
 * favicon, the outcomes refresh of a page being left): those are the
 * browser leaving, not failures; and the 422 a refused form is answered
 * with on purpose (Chromium logs every 4xx document).
 */
function realProblems(problems) {
  return problems.filter((p) => !p.endsWith('net::ERR_ABORTED') && !/status of 422/.test(p));
}

async function newPage(opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true, ...opts });
  const page = await context.newPage();
  return { context, page, problems: watchPage(page) };
}

test('an operator runs a method on the devices a query selects and watches it live', { timeout: 240_000 }, async () => {
  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'olga', 'operator-pass-1');
    await page.getByRole('link', { name: 'Jobs' }).click();
    await page.waitForURL(/\/jobs$/);
    assert.deepEqual(await axeViolations(page), []);

    // A mistake in the query: the form comes back as typed, saying where.
    const form = page.getByTestId('job-form');
    await form.getByLabel('Devices (query)').fill("tags.site = 'berlin' AN");
    await form.getByLabel('Method name').fill('reboot');
    await form.getByTestId('create-job').click();
    const error = page.getByTestId('job-form-error');
    await error.waitFor();
    assert.match(await error.textContent(), /column 22/);
    assert.equal(await page.getByLabel('Devices (query)').inputValue(), "tags.site = 'berlin' AN");
    assert.equal(await page.getByLabel('Method name').inputValue(), 'reboot');

    await page.getByLabel('Devices (query)').fill("tags.site = 'berlin'");
    await page.getByLabel('Payload (JSON)').fill('{"delay": 1}');
    await page.getByTestId('create-job').click();
    await page.waitForURL(/\/jobs\/job-/);
    // The counts arrive live: one answered, two HTTPS-only devices cannot take methods.
    await page.locator('[data-testid="job-succeeded"]', { hasText: '1' }).waitFor({ timeout: 20_000 });
    await page.locator('[data-testid="job-failed"]', { hasText: '2' }).waitFor({ timeout: 20_000 });
    await page.locator('[data-testid="job-pending"]', { hasText: '0' }).waitFor();
    await page.locator('.page-header [data-testid="job-status"][data-status="completed"]').waitFor();
    const rows = page.getByTestId('job-device');
    await page.locator('[data-testid="job-device"][data-device-id="pump-3"][data-status="failed"]').waitFor();
    assert.equal(await rows.count(), 3);
    assert.match(await page.locator('[data-device-id="pump-1"]').textContent(), /"rebooting":\{"delay":1\}/);
    assert.match(await page.locator('[data-device-id="pump-2"]').textContent(), /not connected/);
    assert.equal(await page.locator('[data-device-id="valve-1"]').count(), 0);
    assert.equal(await page.getByTestId('cancel-job').count(), 0, 'a finished job offers no cancel');
    assert.deepEqual(await axeViolations(page), []);
    await screenshot(page, 'jobs-detail');

    await page.getByRole('link', { name: 'Jobs', exact: true }).first().click();
    await page.getByTestId('job-row').first().waitFor();
    await screenshot(page, 'jobs-list');
    assert.deepEqual(realProblems(problems), []);
  } finally {
    await context.close();
  }
});

test('a scheduled job is cancelled after a confirmation', { timeout: 60_000 }, async () => {
  const { context, page, problems } = await newPage({ colorScheme: 'dark' });
  try {
    await login(page, hub.url, 'olga', 'operator-pass-1');
    await page.goto(`${hub.url}/jobs`);
    const form = page.getByTestId('job-form');
    await form.getByLabel('Desired-twin patch').check();
    assert.equal(await form.getByLabel('Method name').isVisible(), false, 'the method fields hide for a twin job');
    await form.getByLabel('Desired properties patch (JSON object)').fill('{"intervalSeconds": 30}');
    const later = new Date(Date.now() + 3600_000).toISOString().slice(0, 16);
    await form.getByLabel('Start at (UTC)').fill(later);
    await form.getByTestId('create-job').click();
    await page.waitForURL(/\/jobs\/job-/);
    await page.locator('.page-header [data-status="scheduled"]').waitFor();
    await page.getByTestId('cancel-job').locator('summary').click();
    await screenshot(page, 'jobs-cancel-dark');
    await page.getByTestId('confirm-cancel-job').click();
    await page.locator('.page-header [data-status="cancelled"]').waitFor();
    assert.deepEqual(await axeViolations(page), []);
    assert.deepEqual(realProblems(problems), []);
  } finally {
    await context.close();
  }
});

test('a viewer sees jobs without the form, and the page fits a phone', { timeout: 60_000 }, async () => {
  const { context, page, problems } = await newPage({ viewport: { width: 390, height: 844 } });
  try {
    await login(page, hub.url, 'vic', 'viewer-pass-1');
    await page.goto(`${hub.url}/jobs`);
    await page.getByTestId('job-row').first().waitFor();
    assert.equal(await page.getByTestId('job-form').count(), 0);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px at 390 px`);
    await page.getByTestId('job-row').first().locator('a').click();
    await page.waitForURL(/\/jobs\/job-/);
    assert.equal(await page.getByTestId('cancel-job').count(), 0);
    await screenshot(page, 'jobs-phone');
    assert.deepEqual(await axeViolations(page), []);
    assert.deepEqual(realProblems(problems), []);
  } finally {
    await context.close();
  }
});

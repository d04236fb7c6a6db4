// MQTT in the browser, end to end against the real binary: a device built on
// the Azure IoT SDK connects over MQTT and the fleet page shows it online
// live; an operator invokes a direct method from the device page form and
// sees the device's answer; the device's log records connect and disconnect.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import deviceSdk from 'azure-iot-device';
import mqttTransport from 'azure-iot-device-mqtt';
import { cli, freePort, launchBrowser, login, screenshot, startHub, watchPage } from './harness.js';

const { Client } = deviceSdk; // CommonJS packages
const { Mqtt } = mqttTransport;

let hub;
let browser;
let mqttPort;
let ca;

before(async () => {
  mqttPort = await freePort();
  const devicePort = await freePort();
  hub = await startHub({ args: ['--mqtt-addr', `127.0.0.1:${mqttPort}`, '--device-addr', `127.0.0.1:${devicePort}`] });
  ca = readFileSync(path.join(hub.dataDir, 'tls', 'ca.pem'), 'utf8');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  return { context, page, problems: watchPage(page) };
}

/** Registers a device and returns an SDK client for it over MQTT (not yet open). */
async function mqttDevice(id) {
  const added = (await cli(hub.dataDir, 'device', 'add', id)).trim();
  const key = added.match(/SharedAccessKey=([^;]+)/)[1];
  const client = Client.fromConnectionString(`HostName=localhost:${mqttPort};DeviceId=${id};SharedAccessKey=${key}`, Mqtt);
  await client.setOptions({ ca });
  return client;
}

test('an MQTT device goes online live and answers a method invoked from the form', { timeout: 90_000 }, async () => {
  const client = await mqttDevice('mqtt-live-1');
  const { context, page, problems } = await newPage();
  let closed = false;
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}/devices`);
    await page.locator('[data-live-status][data-state="live"]').waitFor({ timeout: 10_000 });
    const badge = page.locator('[data-device-id="mqtt-live-1"]').getByTestId('status-badge');
    assert.equal(await badge.getAttribute('data-status'), 'offline');

    // Connecting without sending anything makes the device online, live.
    await client.open();
    await page.locator('[data-device-id="mqtt-live-1"] [data-testid="status-badge"][data-status="online"]').waitFor({ timeout: 10_000 });

    client.onDeviceMethod('reboot', (request, response) => {
      response.send(200, { rebooting: true, delay: request.payload.delay }, () => {});
    });
    await page.goto(`${hub.url}/devices/mqtt-live-1#commands`);
    await page.locator('[data-live-status][data-state="live"]').waitFor({ timeout: 10_000 });
    const form = page.getByTestId('method-form');
    await form.getByTestId('method-name').fill('reboot');
    await form.getByTestId('method-payload').fill('{"delay": 5}');
    await form.getByTestId('method-invoke').click();
    await page.getByTestId('method-status').filter({ hasText: 'Status 200' }).waitFor({ timeout: 15_000 });
    const answer = JSON.parse(await page.getByTestId('method-payload-out').textContent());
    assert.deepEqual(answer, { rebooting: true, delay: 5 });
    await screenshot(page, 'mqtt-method-answered');

    // The page forwards every event type of the device stream, connection
    // events too (the list comes from the Go contract, live/events.go).
    await page.evaluate(() => {
      window.connectionEvent = new Promise((resolve) => {
        document.addEventListener('live:connection', (evt) => resolve(evt.detail), { once: true });
      });
    });
    await client.close();
    closed = true;
    const ev = await page.evaluate(() => window.connectionEvent);
    assert.equal(ev.connected, false);
    assert.equal(ev.protocol, 'mqtt');
    // Navigating away from the fleet page may abort its favicon request.
    assert.deepEqual(problems.filter((p) => !p.includes('net::ERR_ABORTED')), []);
  } finally {
    if (!closed) await client.close();
    await context.close();
  }

  // The device's log keeps both ends of the connection, with the reason.
  const token = (await cli(hub.dataDir, 'token', 'create', '--role', 'admin', '--name', 'mqtt-e2e')).trim();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await fetch(`${hub.url}/api/v1/audit?target=mqtt-live-1&action=device.`, { headers: { Authorization: `Bearer ${token}` } });
    const actions = (await res.json()).entries.map((e) => `${e.action}: ${e.detail}`);
    if (actions.some((a) => a === 'device.disconnected: device disconnected')) {
      assert.ok(actions.some((a) => a.startsWith('device.connected: MQTT from 127.0.0.1:')), actions.join('\n'));
      break;
    }
    if (Date.now() > deadline) assert.fail(`no disconnect in the device log:\n${actions.join('\n')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
});

test('disabling a device closes its MQTT connection at once', { timeout: 60_000 }, async () => {
  const client = await mqttDevice('mqtt-kick-1');
  await client.open();
  const token = (await cli(hub.dataDir, 'token', 'create', '--role', 'admin', '--name', 'mqtt-kick')).trim();
  try {
    const res = await fetch(`${hub.url}/api/v1/devices/mqtt-kick-1`, {
      method: 'PATCH',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ enabled: false }),
    });
    assert.equal(res.status, 200, await res.text());
    // The device registry asks the broker to check the device at once; the
    // periodic check (every 5 s) would be too late for this deadline.
    const deadline = Date.now() + 2_500;
    for (;;) {
      const audit = await fetch(`${hub.url}/api/v1/audit?target=mqtt-kick-1&action=device.disconnected`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      const details = (await audit.json()).entries.map((e) => e.detail);
      if (details.includes('device disabled')) break;
      if (Date.now() > deadline) assert.fail(`no "device disabled" disconnect in the log: ${details.join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await client.close().catch(() => {});
  }
});

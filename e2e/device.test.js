// The device page built around the device (issue 13), end to end in
// headless Chromium against the real binary with a real Azure IoT SDK
// device over MQTT: the header says how the device is connected and what it
// reports; tabs are deep-linkable and keyboard-usable; answers that arrive
// after live events do not set the page back (twin, cloud-to-device
// deliveries); destructive and connection-breaking actions ask first; a
// failed add keeps what was typed; nothing scrolls sideways at 390 px.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import deviceSdk from 'azure-iot-device';
import mqttTransport from 'azure-iot-device-mqtt';
import { axeViolations, cli, cliWithInput, freePort, launchBrowser, login, screenshot, startHub, watchPage } from './harness.js';

const { Client, Message } = deviceSdk; // CommonJS packages
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
  await cli(hub.dataDir, 'device', 'add', 'poller-1');
  await cliWithInput(hub.dataDir, 'operator-pass-1\n', 'user', 'add', '--role', 'operator', '--password-stdin', 'olga');
  await cliWithInput(hub.dataDir, 'viewer-pass-1\n', 'user', 'add', '--role', 'viewer', '--password-stdin', 'vic');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

async function newPage(opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, ...opts });
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

// The favicon's request is cut when a test navigates right after a load.
const relevant = (problems) => problems.filter((p) => !/favicon\.svg\S* net::ERR_ABORTED/.test(p));
const live = (page) => page.locator('[data-live-status][data-state="live"]').waitFor({ timeout: 15_000 });
const squash = (s) => (s ?? '').replace(/\s+/g, ' ').trim();

test('the header says how the device is connected and shows its latest values', { timeout: 120_000 }, async () => {
  const client = await mqttDevice('header-1');
  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'olga', 'operator-pass-1');
    await page.goto(`${hub.url}/devices/poller-1`);
    const conn = page.getByTestId('device-connection');
    assert.match(squash(await conn.textContent()), /HTTPS only — polls for messages.*direct methods fail/);

    await page.goto(`${hub.url}/devices/header-1`);
    await live(page);
    await client.open();
    // Live: the connection line and a tile per metric, without a reload.
    await page.locator('[data-testid="device-connection"][data-connected="true"]').waitFor({ timeout: 10_000 });
    assert.match(squash(await conn.textContent()), /^Connected over MQTT since just now from 127\.0\.0\.1:\d+ Takes direct methods/);
    await client.sendEvent(new Message(JSON.stringify({ temperature: 21.5, humidity: 40 })));
    const tile = page.locator('[data-metric-tiles] li[data-tile="temperature"] [data-tile-value]');
    await tile.filter({ hasText: /^21\.5$/ }).waitFor({ timeout: 10_000 });

    // Rendered by the server the same way (once the charts the reading
    // added have loaded: a reload cuts requests still out).
    await page.locator('[data-testid="chart"][aria-busy]').first().waitFor({ state: 'detached', timeout: 10_000 });
    await page.reload();
    assert.match(squash(await conn.textContent()), /^Connected over MQTT since .+ from 127\.0\.0\.1:\d+/);
    assert.equal(await tile.textContent(), '21.5');
    assert.equal(await page.locator('[data-metric-tiles] li[data-tile="humidity"] [data-tile-value]').textContent(), '40');
    await live(page);
    await client.close();
    await page.locator('[data-testid="device-connection"][data-connected="false"]').waitFor({ timeout: 10_000 });
    assert.match(squash(await conn.textContent()), /HTTPS only — polls for messages Last MQTT connection closed just now/);
    assert.deepEqual(relevant(problems), []);
  } finally {
    await client.close().catch(() => {});
    await context.close();
  }
});

test('in a cluster the header names the node, and a late close from the node the device left does not undo it', { timeout: 60_000 }, async () => {
  // The connection events of a device that moves from node a to node b
  // (--bus), fed to the page as its stream hands them on, in the order
  // the instances' events may arrive: b's connect before a's close.
  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'olga', 'operator-pass-1');
    await page.goto(`${hub.url}/devices/poller-1`);
    await live(page);
    const conn = page.getByTestId('device-connection');
    const feed = (ev) => page.evaluate((detail) => document.dispatchEvent(new CustomEvent('live:connection', { detail })), ev);
    const t0 = Date.now();
    const at = (ms) => new Date(t0 + ms).toISOString();
    await feed({ connected: true, protocol: 'mqtt', remote: '10.0.0.7:50001', node: 'a', at: at(-60_000) });
    assert.match(squash(await conn.textContent()), /^Connected over MQTT to node a since .* from 10\.0\.0\.7:50001/);
    await feed({ connected: true, protocol: 'mqtt', remote: '10.0.0.8:50002', node: 'b', at: at(0) });
    assert.match(squash(await conn.textContent()), /^Connected over MQTT to node b since .* from 10\.0\.0\.8:50002/);
    // a's close of the connection b took over arrives late: still on b.
    await feed({ connected: false, protocol: 'mqtt', node: 'a', reason: 'taken over by a new connection on b', at: at(500) });
    assert.equal(await conn.getAttribute('data-connected'), 'true');
    assert.match(squash(await conn.textContent()), /to node b/);
    // An event older than the connection shown changes nothing either.
    await feed({ connected: true, protocol: 'mqtt', node: 'a', at: at(-30_000) });
    assert.match(squash(await conn.textContent()), /to node b/);
    // b's own close is the device going away.
    await feed({ connected: false, protocol: 'mqtt', node: 'b', at: at(1000) });
    assert.equal(await conn.getAttribute('data-connected'), 'false');
    assert.match(squash(await conn.textContent()), /^HTTPS only — polls for messages/);
    assert.deepEqual(relevant(problems), []);
  } finally {
    await context.close();
  }
});

test('tabs: deep links, arrow keys, Home and End, back button; charts 280 px high fitted to the data', { timeout: 120_000 }, async () => {
  const client = await mqttDevice('tabs-1');
  const { context, page, problems } = await newPage();
  try {
    await client.open();
    await client.sendEvent(new Message(JSON.stringify({ level: 3 })));
    await login(page, hub.url, 'admin', hub.password);
    const selected = () => page.locator('[role="tab"][aria-selected="true"]').getAttribute('aria-controls');
    const visible = () => page.locator('[role="tabpanel"]:not([hidden])').evaluateAll((els) => els.map((e) => e.id));

    await page.goto(`${hub.url}/devices/tabs-1#twin`);
    assert.equal(await selected(), 'twin');
    assert.deepEqual(await visible(), ['twin']);
    await page.locator('[role="tab"][aria-selected="true"]').focus();
    await page.keyboard.press('ArrowRight');
    assert.equal(await selected(), 'messages');
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-controls')), 'messages');
    assert.equal(new URL(page.url()).hash, '#messages');
    await page.keyboard.press('End');
    assert.equal(await selected(), 'settings');
    await page.keyboard.press('Home');
    assert.equal(await selected(), 'overview');
    await page.keyboard.press('ArrowLeft');
    assert.equal(await selected(), 'settings');
    // Only the selected tab is in the tab order; Tab goes on into its panel.
    assert.deepEqual(await page.locator('[role="tab"]').evaluateAll((ts) => ts.map((t) => t.tabIndex)), [-1, -1, -1, -1, -1, 0]);

    await page.getByTestId('tab-telemetry').click();
    assert.equal(new URL(page.url()).hash, '#telemetry');
    assert.deepEqual(await visible(), ['telemetry']);
    // The chart is at least 280 px high and its range fits the data: a
    // reading seconds old is not squeezed into an hour.
    const plot = page.locator('figure[data-metric="level"] .chart-plot canvas').first();
    await plot.waitFor({ timeout: 10_000 });
    await page.waitForFunction(() => Number(document.querySelector('figure[data-metric="level"]')?.dataset.points) >= 1, null, { timeout: 10_000 });
    const box = await plot.boundingBox();
    assert.ok(box.height >= 280, `chart height ${box.height}`);
    assert.equal(await page.getByTestId('range-fit').getAttribute('aria-pressed'), 'true');
    assert.match(await page.locator('[data-range-label]').textContent(), /^Live, since /);
    // Fitted: the reading is seconds old, so the range is minutes, not the hour it was.
    const from = Number(await page.locator('[data-range-label]').getAttribute('data-from'));
    assert.ok(Date.now() - from < 3 * 60e3, `fitted range starts ${(Date.now() - from) / 60e3} min ago`);
    await screenshot(page, 'device-telemetry-fit');

    await page.getByTestId('tab-commands').click();
    await page.goBack();
    assert.equal(await selected(), 'telemetry');
    assert.deepEqual(relevant(problems), []);
  } finally {
    await client.close().catch(() => {});
    await context.close();
  }
});

test('a twin save answered after the live reported change keeps the newer reported properties', { timeout: 120_000 }, async () => {
  const client = await mqttDevice('twin-race');
  const { context, page, problems } = await newPage();
  try {
    await client.open();
    const twin = await client.getTwin();
    // The device applies every desired interval and reports it back at once.
    twin.on('properties.desired', (delta) => {
      if (delta.interval !== undefined) twin.properties.reported.update({ interval: delta.interval, firmware: '2.0.1' }, () => {});
    });
    await login(page, hub.url, 'olga', 'operator-pass-1');
    await page.goto(`${hub.url}/devices/twin-race#twin`);
    await live(page);
    const reportedVersion = page.locator('[data-reported-version]');
    const before = Number((await reportedVersion.textContent()).slice(1));

    // Hold the save's answer until the live event of the device's reported
    // change has been shown: the order that left the page stale.
    await page.route('**/api/v1/devices/twin-race/twin', async (route) => {
      if (route.request().method() !== 'PATCH') return route.continue();
      const response = await route.fetch();
      await page.waitForFunction((v) => Number(document.querySelector('[data-reported-version]').textContent.slice(1)) > v, before, { timeout: 10_000 });
      await route.fulfill({ response });
    });
    await page.getByTestId('twin-desired').fill('{"interval": 10}');
    await page.getByTestId('twin-save').click();
    await page.locator('.toast').filter({ hasText: 'Desired properties saved.' }).waitFor({ timeout: 10_000 });
    assert.equal(await reportedVersion.textContent(), `v${before + 1}`);
    assert.match(await page.getByTestId('twin-reported').textContent(), /"interval": 10/);
    // Reported-only properties (firmware) are the device's own, not a mismatch.
    await page.locator('[data-twin-keys] tr[data-key="interval"][data-differs="false"]').waitFor();
    assert.equal(await page.locator('[data-twin-keys] tr[data-key="firmware"]').getAttribute('data-differs'), 'false');
    await page.reload();
    assert.equal(await page.locator('[data-twin-keys] tr[data-key="firmware"]').getAttribute('data-differs'), 'false');
    assert.equal(await page.locator('[data-twin-keys] tr[data-key="interval"]').getAttribute('data-differs'), 'false');
    assert.deepEqual(relevant(problems), []);
  } finally {
    await client.close().catch(() => {});
    await context.close();
  }
});

test('a message completed live before the send is answered shows its delivery', { timeout: 120_000 }, async () => {
  const client = await mqttDevice('c2d-race');
  const { context, page, problems } = await newPage();
  try {
    client.on('message', (msg) => client.complete(msg, () => {}));
    await client.open();
    await login(page, hub.url, 'olga', 'operator-pass-1');
    await page.goto(`${hub.url}/devices/c2d-race#commands`);
    await live(page);
    // Hold the send's answer until the live events have shown the message
    // delivered and completed (an MQTT device takes it at once).
    await page.route('**/api/v1/devices/c2d-race/cloud-messages', async (route) => {
      if (route.request().method() !== 'POST') return route.continue();
      const response = await route.fetch();
      await page.locator('[data-testid="c2d-row"] [data-state="completed"]').waitFor({ timeout: 10_000 });
      await route.fulfill({ response });
    });
    await page.getByTestId('c2d-body').fill('reboot');
    await page.getByTestId('c2d-send').click();
    await page.locator('.toast').filter({ hasText: 'Message queued.' }).waitFor({ timeout: 10_000 });
    const row = page.getByTestId('c2d-row').first();
    assert.equal(await row.getByTestId('c2d-state').textContent(), 'completed');
    assert.equal(await row.locator('[data-deliveries]').textContent(), '1');
    assert.deepEqual(relevant(problems), []);
  } finally {
    await client.close().catch(() => {});
    await context.close();
  }
});

test('recent method calls carry their time; Shift+Tab keeps the Call method button clear of the sticky header', { timeout: 60_000 }, async () => {
  const { context, page } = await newPage({ viewport: { width: 1366, height: 700 } });
  try {
    await login(page, hub.url, 'olga', 'operator-pass-1');
    await page.goto(`${hub.url}/devices/poller-1#commands`);
    await live(page);
    await page.getByTestId('method-name').fill('ping');
    await page.getByTestId('method-invoke').click();
    const call = page.getByTestId('method-call').first();
    await call.filter({ hasText: 'ping by user:olga: not connected' }).waitFor({ timeout: 10_000 });
    const at = await call.getByTestId('method-call-time').getAttribute('datetime');
    assert.ok(Math.abs(Date.parse(at) - Date.now()) < 60_000, `call time ${at}`);

    // Tab past the button, scroll it behind the sticky header, come back
    // with Shift+Tab: it must be scrolled clear of the header.
    const header = await page.locator('.app-header').boundingBox();
    const button = page.getByTestId('method-invoke');
    await page.evaluate(() => {
      document.body.style.paddingBottom = '3000px'; // room to scroll
    });
    await button.focus();
    await page.keyboard.press('Tab');
    const top = (await button.boundingBox()).y;
    await page.evaluate((dy) => window.scrollBy(0, dy), top - header.height / 3);
    assert.ok((await button.boundingBox()).y < header.height, 'the button is behind the header before Shift+Tab');
    await page.keyboard.press('Shift+Tab');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'method-invoke');
    const after = await button.boundingBox();
    assert.ok(after.y >= header.height, `button top ${after.y} is under the header (${header.height} px)`);
  } finally {
    await context.close();
  }
});

test('rotate key and disable ask first; a failed add keeps what was typed', { timeout: 90_000 }, async () => {
  await cli(hub.dataDir, 'device', 'add', 'ask-1');
  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'admin', hub.password);
    const keyOf = async () => (await (await page.request.get(`${hub.url}/api/v1/devices/ask-1`)).json()).primaryKey;
    const key = await keyOf();
    await page.goto(`${hub.url}/devices/ask-1#settings`);
    await page.getByTestId('rotate-primary').click();
    const confirmRotate = page.getByTestId('confirm-rotate-primary');
    await confirmRotate.waitFor();
    assert.equal(await keyOf(), key, 'one click rotated the key');
    await confirmRotate.click();
    await page.getByTestId('flash').waitFor();
    assert.notEqual(await keyOf(), key);

    await page.goto(`${hub.url}/devices/ask-1#settings`);
    await page.getByTestId('disable-device').click();
    assert.equal(await page.getByTestId('device-status').getAttribute('data-status'), 'offline', 'one click disabled the device');
    await page.getByTestId('confirm-disable-device').click();
    await page.getByTestId('flash').waitFor();
    assert.equal(await page.getByTestId('device-status').getAttribute('data-status'), 'disabled');

    // A duplicate id: the form stays open with the input and the error in it.
    await page.goto(`${hub.url}/devices`);
    await page.getByTestId('add-device').locator('summary').click();
    await page.getByLabel('Device ID').fill('ask-1');
    await page.getByLabel('Name (optional)').fill('Second pump');
    await page.getByLabel('Tags (optional)').fill('site=oslo');
    await page.getByRole('button', { name: 'Create device' }).click();
    const error = page.getByTestId('add-device-error');
    await error.waitFor();
    assert.equal(await error.textContent(), 'A device with id "ask-1" already exists. Choose another id.');
    assert.equal(await page.getByLabel('Device ID').inputValue(), 'ask-1');
    assert.equal(await page.getByLabel('Name (optional)').inputValue(), 'Second pump');
    assert.equal(await page.getByLabel('Tags (optional)').inputValue(), 'site=oslo');
    assert.equal(await page.getByLabel('Device ID').getAttribute('aria-invalid'), 'true');
    await page.getByLabel('Device ID').fill('ask-2');
    await page.getByRole('button', { name: 'Create device' }).click();
    await page.waitForURL('**/devices/ask-2');
    // The refused add is a 409 page, which the console notes.
    assert.deepEqual(relevant(problems).filter((p) => !/status of 409/.test(p)), []);
  } finally {
    await context.close();
  }
});

test('viewer: the Messages heading stays left without Purge; the desired twin reads as read-only', { timeout: 60_000 }, async () => {
  const { context, page } = await newPage();
  try {
    await login(page, hub.url, 'vic', 'viewer-pass-1');
    await page.goto(`${hub.url}/devices/poller-1#commands`);
    const heading = await page.locator('#c2d-history-heading').boundingBox();
    const section = await page.locator('#c2d-history-heading').locator('xpath=ancestor::section[1]').boundingBox();
    assert.ok(heading.x - section.x < 2, `heading at ${heading.x}, its section at ${section.x}`);
    await page.getByTestId('tab-twin').click();
    const box = page.getByTestId('twin-desired');
    assert.equal(await box.getAttribute('readonly'), '');
    assert.match(squash(await page.locator('label[for="twin-desired"]').textContent()), /read-only/);
    assert.equal(await box.evaluate((el) => getComputedStyle(el).borderTopStyle), 'dashed');
  } finally {
    await context.close();
  }
});

test('no page scrolls sideways at 390 px; axe-core finds nothing serious; screenshots light and dark', { timeout: 600_000 }, async () => {
  const client = await mqttDevice('wide-twin');
  try {
    await client.open();
    const twin = await client.getTwin();
    await new Promise((resolve, reject) =>
      twin.properties.reported.update(
        { firmware: 'fieldhub-demo-firmware-2.4.1-build.20261201', network: { ssid: 'a-rather-long-network-name', rssi: -61 }, intervalSeconds: 7 },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    await client.sendEvent(new Message(JSON.stringify({ temperature: 22.25, 'battery.voltage.long.metric.name': 3.71 })));
  } finally {
    await client.close().catch(() => {});
  }
  const found = [];
  const wide = [];
  for (const colorScheme of ['light', 'dark']) {
    for (const width of [1366, 390]) {
      const { context, page } = await newPage({ bypassCSP: true, colorScheme, viewport: { width, height: 900 } });
      try {
        await login(page, hub.url, 'admin', hub.password);
        for (const tab of ['overview', 'telemetry', 'commands', 'twin', 'messages', 'settings']) {
          await page.goto(`${hub.url}/devices/wide-twin#${tab}`);
          await page.waitForFunction(() => !document.querySelector('[data-telemetry]')?.dataset.loading, null, { timeout: 10_000 });
          const sw = await page.evaluate(() => document.documentElement.scrollWidth);
          if (sw > width) wide.push(`device ${tab} ${colorScheme} ${width}px: ${sw} px wide`);
          for (const v of await axeViolations(page)) found.push(`device ${tab} ${colorScheme} ${width}px: ${v}`);
          if (['overview', 'telemetry', 'commands', 'twin'].includes(tab)) await screenshot(page, `device-${tab}-${width}-${colorScheme}`);
        }
        if (colorScheme === 'light' && width === 390) {
          for (const p of ['/devices', '/users', '/audit']) {
            await page.goto(`${hub.url}${p}`);
            const sw = await page.evaluate(() => document.documentElement.scrollWidth);
            if (sw > width) wide.push(`${p} ${width}px: ${sw} px wide`);
          }
        }
      } finally {
        await context.close();
      }
    }
  }
  assert.deepEqual(wide, []);
  assert.deepEqual(found, []);
});

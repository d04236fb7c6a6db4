// A storage fault on the dashboard: with the data folder on a small tmpfs
// that the test fills, open pages show the fault banner live (light and
// dark), a page loaded meanwhile shows it at once, and it goes away by
// itself once space is freed and a message is stored again; the unmodified
// Azure IoT SDK, refused meanwhile, sends again by itself and loses nothing.
// Mounting needs root (CI runs as root); elsewhere the tests are skipped.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import deviceSdk from 'azure-iot-device';
import deviceHttp from 'azure-iot-device-http';
import mqttTransport from 'azure-iot-device-mqtt';
import { cli, freePort, launchBrowser, login, screenshot, startHub, tempDir, watchPage } from './harness.js';

const { Client, Message } = deviceSdk; // CommonJS packages
const { Http } = deviceHttp;
const { Mqtt } = mqttTransport;

let hub;
let browser;
let mnt;

after(async () => {
  await browser?.close();
  await hub?.stop();
  if (mnt) execFileSync('umount', [mnt]);
});

/** Mounts an 8 MB tmpfs, or returns null where that is not allowed. */
function mountTmpfs() {
  const dir = tempDir('fieldhub-e2e-tmpfs-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    return { error: String(err.stderr || err.message).trim() };
  }
  return { dir };
}

/** Writes a file until the filesystem is full; removing it frees the space. */
function fillDisk(dir) {
  const file = path.join(dir, 'filler');
  const fd = openSync(file, 'w');
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10, 512]) {
      const chunk = Buffer.alloc(size);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (err) {
          if (err.code !== 'ENOSPC') throw err;
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return file;
}

/** Contrast ratio (WCAG 2.1) of two computed CSS colours "rgb(r, g, b)". */
function contrast(a, b) {
  const lum = (css) => {
    const [r, g, bl] = css.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
    const lin = (c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(bl);
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

test('a full disk shows on open pages live and clears by itself', { timeout: 120_000 }, async (t) => {
  const mounted = mountTmpfs();
  if (mounted.error) {
    t.skip(`cannot mount a tmpfs for a full disk (needs root): ${mounted.error}`);
    return;
  }
  mnt = mounted.dir;
  hub = await startHub({ dataDir: path.join(mnt, 'data'), args: ['--device-addr', '127.0.0.1:0', '--mqtt-addr', ''] });
  const device = 'tank-1';
  await cli(hub.dataDir, 'device', 'add', '--name', 'Tank level', device);
  const token = (await cli(hub.dataDir, 'device', 'token', '--ttl', '1h', device)).trim().split('\n').pop();
  const body = JSON.stringify({ level: 42, pad: 'x'.repeat(60_000) });
  const send = async () => {
    const res = await fetch(`${hub.url}/devices/${device}/messages/events?api-version=2021-04-12`, {
      method: 'POST',
      headers: { Authorization: token, 'Content-Type': 'application/json' },
      body,
    });
    await res.arrayBuffer();
    return res;
  };
  assert.equal((await send()).status, 204);

  browser = await launchBrowser();
  const open = async (colorScheme, pathname) => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme });
    const page = await context.newPage();
    const problems = watchPage(page);
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}${pathname}`);
    await page.locator('[data-live-status][data-state="live"]').waitFor({ timeout: 10_000 });
    // The device's own refused messages are the page's business, not errors.
    return { page, problems: () => problems.filter((p) => !/favicon\.svg.*ERR_ABORTED/.test(p)) };
  };
  const fleet = await open('light', '/devices');
  const devicePage = await open('dark', `/devices/${device}`);
  for (const { page } of [fleet, devicePage]) {
    assert.equal(await page.getByTestId('storage-banner').isVisible(), false, 'no banner while storage is healthy');
  }

  const filler = fillDisk(mnt);
  let status = 204;
  for (let i = 0; status === 204 && i < 200; i++) {
    const res = await send();
    status = res.status;
    if (status === 503) assert.equal(res.headers.get('retry-after'), '10');
  }
  assert.equal(status, 503, 'a full disk answers 503');

  for (const [name, { page }] of [
    ['storage-fault-light', fleet],
    ['storage-fault-dark', devicePage],
  ]) {
    const banner = page.getByTestId('storage-banner');
    await banner.waitFor({ state: 'visible', timeout: 10_000 });
    const text = await banner.textContent();
    assert.match(text, /storing device messages fails \(disk full\)/);
    assert.match(text, /first seen (just now|\d+ s ago)/);
    assert.equal(await banner.getAttribute('role'), 'alert');
    const { color, background } = await banner.evaluate((el) => {
      const s = getComputedStyle(el);
      return { color: s.color, background: s.backgroundColor };
    });
    assert.ok(contrast(color, background) >= 4.5, `${name}: contrast ${contrast(color, background).toFixed(2)} of ${color} on ${background}`);
    await screenshot(page, name);
  }
  // A page without a live stream shows it on load.
  const users = await fleet.page.context().newPage();
  await users.goto(`${hub.url}/users`);
  assert.equal(await users.getByTestId('storage-banner').isVisible(), true, 'a page loaded during the fault shows it');
  await users.setViewportSize({ width: 390, height: 800 });
  await screenshot(users, 'storage-fault-phone');
  await users.close();

  rmSync(filler);
  assert.equal((await send()).status, 204, 'ingest resumes once space is freed');
  for (const { page } of [fleet, devicePage]) {
    await page.getByTestId('storage-banner').waitFor({ state: 'hidden', timeout: 10_000 });
  }
  assert.deepEqual([...fleet.problems(), ...devicePage.problems()], []);
  const ready = await fetch(`${hub.url}/readyz`);
  assert.equal(ready.status, 200);
});

test('the Azure IoT SDK retries through a full disk over MQTT and HTTPS, and nothing is lost', { timeout: 180_000 }, async (t) => {
  const mounted = mountTmpfs();
  if (mounted.error) {
    t.skip(`cannot mount a tmpfs for a full disk (needs root): ${mounted.error}`);
    return;
  }
  const dir = mounted.dir;
  // Undone in reverse order (t.after runs its hooks in the order given).
  const cleanups = [() => execFileSync('umount', [dir])];
  t.after(async () => {
    for (const undo of cleanups.reverse()) await undo();
  });
  // The SDK's HTTP transport always dials 443: a loopback address of its own
  // (as in conformance_http.test.js), which --hostname puts in the certificate.
  const host = '127.0.0.9';
  const mqttPort = await freePort();
  const sdkHub = await startHub({
    dataDir: path.join(dir, 'data'),
    args: ['--device-addr', `${host}:443`, '--hostname', host, '--mqtt-addr', `${host}:${mqttPort}`, '--log-level', 'debug'],
  });
  cleanups.push(() => sdkHub.stop());
  const ca = readFileSync(path.join(sdkHub.dataDir, 'tls', 'ca.pem'), 'utf8');
  const viewer = (await cli(sdkHub.dataDir, 'token', 'create', '--role', 'viewer', '--name', 'storage')).trim();
  const keyOf = async (id) => (await cli(sdkHub.dataDir, 'device', 'add', id)).match(/SharedAccessKey=(\S+)/)[1];
  const mqttClient = Client.fromConnectionString(`HostName=${host}:${mqttPort};DeviceId=sdk-mqtt;SharedAccessKey=${await keyOf('sdk-mqtt')}`, Mqtt);
  await mqttClient.setOptions({ ca });
  await mqttClient.open();
  cleanups.push(() => mqttClient.close().catch(() => {}));
  const httpClient = Client.fromConnectionString(`HostName=${host};DeviceId=sdk-http;SharedAccessKey=${await keyOf('sdk-http')}`, Http);
  await httpClient.setOptions({ ca, http: { receivePolicy: { manualPolling: true } } });
  await httpClient.open();
  cleanups.push(() => httpClient.close().catch(() => {}));
  const message = (id) => {
    const m = new Message(JSON.stringify({ level: 7, pad: 'x'.repeat(60_000) }));
    m.messageId = id;
    return m;
  };
  await mqttClient.sendEvent(message('mqtt-before'));
  await httpClient.sendEvent(message('http-before'));

  const filler = fillDisk(dir);
  const sent = [mqttClient.sendEvent(message('mqtt-during')), httpClient.sendEvent(message('http-during'))];
  // Both were refused: the MQTT connection closed without PUBACK, the HTTPS
  // request got its 503 (logged at debug level only).
  await sdkHub.waitForLog(/device disconnected.*device=sdk-mqtt.*telemetry not stored/, 30_000);
  await sdkHub.waitForLog(/request refused.*status=503/, 30_000);
  assert.equal((await fetch(`${sdkHub.url}/readyz`)).status, 503);

  rmSync(filler);
  await Promise.all(sent); // the SDKs retried by themselves
  for (const [device, id] of [
    ['sdk-mqtt', 'mqtt-during'],
    ['sdk-http', 'http-during'],
  ]) {
    const res = await fetch(`${sdkHub.url}/api/v1/devices/${device}/messages?limit=10`, { headers: { Authorization: `Bearer ${viewer}` } });
    const ids = (await res.json()).messages.map((m) => m.messageId);
    assert.ok(ids.includes(id), `${device}: ${id} acknowledged but not stored (stored: ${ids})`);
  }
  // The start-up checks call the small tmpfs a disk space problem, rightly.
  const errors = sdkHub.logs().split('\n').filter((l) => l.includes('level=ERROR'));
  const startup = errors.filter((l) => l.includes('msg="start-up check"'));
  assert.deepEqual(startup.map((l) => l.match(/check="([^"]+)"/)?.[1]), ['disk space'], 'the start-up checks: disk space');
  assert.equal(errors.length - startup.length, 1, 'one ERROR line: the storage fault, once');
});

// The device page's "Connect a device" panel, in a real browser against the
// real binary: per transport it shows a connection string and a Node.js
// snippet, and the snippet, copied exactly as shown and run with the CA
// certificate downloaded from the same panel, delivers its message with the
// unmodified Azure IoT device SDK. `fieldhub device show --transport` prints
// the same strings.
//
// The SDKs' HTTP and MQTT-over-WebSocket transports always dial port 443, so
// those two are tested only where this process may bind 443 (root, as in
// CI): the hub then serves its HTTPS device endpoint on 127.0.0.4:443 (a
// loopback address no other e2e file uses) and names that address with
// --hostname. Elsewhere the test says which transports it could not try.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { createRequire } from 'node:module';
import { artifacts, cli, cliWithInput, freePort, launchBrowser, login, startHub, watchPage } from './harness.js';

const run = promisify(execFile);
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const canBind443 = process.getuid?.() === 0;
const host = canBind443 ? '127.0.0.4' : '127.0.0.1';
const deviceId = 'connect-node';
const work = path.join(artifacts, `connect-${process.pid}`);

let hub;
let browser;
let viewerToken;

before(async () => {
  mkdirSync(work, { recursive: true });
  const mqttPort = await freePort();
  const deviceAddr = canBind443 ? `${host}:443` : `${host}:${await freePort()}`;
  hub = await startHub({ args: ['--device-addr', deviceAddr, '--hostname', host, '--mqtt-addr', `${host}:${mqttPort}`] });
  await cli(hub.dataDir, 'device', 'add', deviceId);
  viewerToken = (await cli(hub.dataDir, 'token', 'create', '--role', 'viewer', '--name', 'connect-e2e')).trim().split('\n').pop();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

async function messageCount() {
  const res = await fetch(`${hub.url}/api/v1/devices/${deviceId}/messages?limit=100`, {
    headers: { Authorization: `Bearer ${viewerToken}` },
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  return (Array.isArray(body) ? body : body.messages).length;
}

/** A navigation right after another may abort the favicon's request; nothing else may fail. */
const realProblems = (problems) => problems.filter((p) => !/favicon\.svg.*ERR_ABORTED/.test(p));

/**
 * Runs the axe-core WCAG 2.1 A/AA rules on the panel; returns the violations.
 * (Its context bypasses the page's CSP, which forbids the inline script.)
 */
async function axe(page) {
  await page.addScriptTag({ content: axeSource });
  return page.evaluate(async () => {
    const r = await window.axe.run('#connect', { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] });
    return r.violations.map((v) => `${v.id}: ${v.nodes.map((n) => `${n.target.join(' ')} (${n.any.map((a) => a.message).join('; ')})`).join(', ')}`);
  });
}

test('the panel is accessible in light and dark, at phone width, and its copy buttons work from the keyboard', async () => {
  for (const colorScheme of ['light', 'dark']) {
    const context = await browser.newContext({ colorScheme, viewport: { width: 390, height: 844 }, bypassCSP: true });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: hub.url });
    const page = await context.newPage();
    const problems = watchPage(page);
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}/devices/${deviceId}`);
    const panel = page.getByTestId('connect-panel');
    await panel.getByTestId('connect-mqtt-node').locator('summary').click();
    assert.deepEqual(await axe(page), [], `axe violations (${colorScheme})`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at 390px (${colorScheme})`);
    await panel.screenshot({ path: path.join(artifacts, `connect-panel-${colorScheme}-390.png`) });

    // Keyboard only: open the Python snippet and copy it.
    const python = panel.getByTestId('connect-mqtt-python');
    await python.locator('summary').focus();
    await page.keyboard.press('Enter');
    assert.equal(await python.getAttribute('open'), '');
    await page.keyboard.press('Tab'); // the code block, scrollable, is focusable
    await page.keyboard.press('Tab');
    const copy = python.getByRole('button', { name: /Copy the Python/ });
    assert.ok(await copy.evaluate((el) => el === document.activeElement), 'Tab reaches the copy button');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement?.textContent === 'Copied');
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, (await python.locator('code').textContent()).trim());
    assert.deepEqual(realProblems(problems), []);
    await context.close();
  }
});

test('each connection string shown works: the Node snippet, as shown, sends a message', async (t) => {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const problems = watchPage(page);
  await login(page, hub.url, 'admin', hub.password);
  await page.goto(`${hub.url}/devices/${deviceId}`);
  const panel = page.getByTestId('connect-panel');
  assert.match(await panel.getByTestId('connect-mqtt-cs').textContent(), /SharedAccessKey=<device-key>$/);

  await panel.getByTestId('connect-reveal').click();
  await page.getByTestId('connect-secret-warning').waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), panel.getByTestId('connect-ca').click()]);
  assert.equal(download.suggestedFilename(), 'fieldhub-ca.pem');
  const caFile = path.join(work, 'fieldhub-ca.pem');
  await download.saveAs(caFile);
  assert.match(readFileSync(caFile, 'utf8'), /^-----BEGIN CERTIFICATE-----/);

  const untested = [];
  for (const transport of ['mqtt', 'mqtt-ws', 'https']) {
    const section = panel.getByTestId(`connect-${transport}`);
    const state = await section.getAttribute('data-works');
    const shown = (await section.getByTestId(`connect-${transport}-cs`).textContent()).trim();
    const cliOut = await cli(hub.dataDir, 'device', 'show', '--keys', 'yes', '--transport', transport, deviceId);
    assert.ok(cliOut.includes(`connection string: ${shown}\n`), `device show --transport ${transport} prints ${shown}:\n${cliOut}`);
    if (state !== 'works') {
      assert.ok(!canBind443, `${transport} is "${state}" although the hub serves devices on :443`);
      untested.push(`${transport} (dials 443, and this test runs as uid ${process.getuid?.()}, which may not bind 443)`);
      continue;
    }
    const code = (await section.locator(`#connect-${transport}-node-code`).textContent()).trim();
    assert.ok(code.includes(JSON.stringify(shown)), `the ${transport} snippet uses the string shown`);
    const file = path.join(work, `send-${transport}.cjs`);
    writeFileSync(file, `${code}\n`);
    const before = await messageCount();
    const { stdout } = await run(process.execPath, [file], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile },
      timeout: 30_000,
    }).catch((err) => {
      throw new Error(`the ${transport} snippet failed: ${err.stderr || err.message}\n${code}`);
    });
    assert.match(stdout, /message sent/);
    // sendEvent resolves on the hub's acknowledgement, which follows the commit.
    assert.equal(await messageCount(), before + 1, `the ${transport} message is stored`);
  }
  if (untested.length) t.diagnostic(`not tried on this machine: ${untested.join('; ')}`);
  assert.deepEqual(realProblems(problems), []);
  await context.close();
});

test('a viewer sees the panel without secrets and cannot fill in the key', async () => {
  await cliWithInput(hub.dataDir, 'viewer-password-1\n', 'user', 'add', '--role', 'viewer', '--password-stdin', 'vic');
  const context = await browser.newContext();
  const page = await context.newPage();
  await login(page, hub.url, 'vic', 'viewer-password-1');
  await page.goto(`${hub.url}/devices/${deviceId}`);
  const panel = page.getByTestId('connect-panel');
  assert.equal(await panel.getByTestId('connect-reveal').count(), 0);
  const text = await panel.textContent();
  assert.ok(!/SharedAccessSignature sr=/.test(text), 'no SAS token');
  assert.match(text, /An admin can see them/);
  await context.close();
});

// Telemetry end to end: a message posted to the real device endpoint shows
// up on an open device page — as a new chart point and in the latest-messages
// panel — live, without a reload; the fleet page follows
// status and messages per minute live.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import path from 'node:path';
import { artifacts, cli, launchBrowser, login, screenshot, startHub, watchPage } from './harness.js';

let hub;
let browser;
let token;

const deviceID = 'therm-1';

before(async () => {
  // Free ports for the device listeners, so this file runs beside others.
  hub = await startHub({ args: ['--device-addr', '127.0.0.1:0', '--mqtt-addr', ''] });
  await cli(hub.dataDir, 'device', 'add', '--name', 'Lab thermometer', '--tags', 'site=lab', deviceID);
  const out = await cli(hub.dataDir, 'device', 'token', '--ttl', '1h', deviceID);
  token = out.trim().split('\n').pop();
  assert.match(token, /^SharedAccessSignature sr=/);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

/** Sends one telemetry message the way the device SDK does over HTTPS. */
async function send(body, props = {}) {
  const headers = { Authorization: token, 'Content-Type': 'application/json' };
  for (const [k, v] of Object.entries(props)) headers[`iothub-app-${k}`] = v;
  const res = await fetch(`${hub.url}/devices/${deviceID}/messages/events?api-version=2021-04-12`, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 204, `device endpoint answered ${res.status}: ${await res.text()}`);
  return Date.now();
}

async function newPage(colorScheme = 'light') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme });
  const page = await context.newPage();
  const seen = watchPage(page);
  // Navigating right after signing in aborts the favicon request; that is
  // the browser's doing, not a failure of the page.
  const problems = {
    list: () => seen.filter((p) => !/favicon\.svg.*ERR_ABORTED/.test(p)),
  };
  return { context, page, problems };
}

function points(page, metric) {
  return page
    .locator(`[data-testid="chart"][data-metric="${metric}"]`)
    .evaluate((el) => Number(el.dataset.points ?? 0))
    .catch(() => 0);
}

// How fast is measured by make bench (BenchmarkHubHTTPS: time until a new reading is on the live stream); here the
// bounds are only generous waits, so that a loaded machine cannot fail the test.
const live = 15_000;

test('a posted message appears live as a chart point and in the latest messages', { timeout: 120_000 }, async (t) => {
  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}/devices/${deviceID}#telemetry`);
    await page.locator('[data-live-status][data-state="live"]').waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId('charts-empty').count(), 1, 'a device without telemetry shows the empty note');
    // A marker that a reload would wipe.
    await page.evaluate(() => {
      window.__noReload = true;
    });

    // The first message creates the charts.
    let sent = await send({ temperature: 21.5, humidity: 40.25, status: 'ok' }, { site: 'lab' });
    const temp = page.locator('[data-testid="chart"][data-metric="temperature"]');
    await temp.locator('canvas').waitFor({ timeout: live });
    await page.waitForFunction(() => Number(document.querySelector('[data-metric="temperature"]')?.dataset.points) >= 1, null, { timeout: live });
    const firstDelay = Date.now() - sent;
    t.diagnostic(`first point after ${firstDelay} ms`);
    assert.equal(await page.locator('[data-testid="chart"][data-metric="humidity"]').count(), 1);
    assert.equal(await page.locator('[data-testid="chart"][data-metric="status"]').count(), 0, 'strings are not charted');

    // The latest messages are the Messages tab's.
    await page.getByTestId('tab-messages').click();
    const message = page.getByTestId('message').first();
    await message.waitFor({ timeout: live });
    const body = await message.getByTestId('message-body').textContent();
    assert.match(body, /\n {2}"temperature": 21\.5,\n/, `body is pretty-printed JSON:\n${body}`);
    assert.match(await message.textContent(), /site=lab/);
    await page.getByTestId('tab-telemetry').click();

    // A second message adds a point to the existing chart.
    const before = await points(page, 'temperature');
    sent = await send({ temperature: 22.75, humidity: 41 });
    await page.waitForFunction(
      (n) => Number(document.querySelector('[data-metric="temperature"]')?.dataset.points) > n,
      before,
      { timeout: live },
    );
    const secondDelay = Date.now() - sent;
    t.diagnostic(`second point after ${secondDelay} ms`);
    await page.waitForFunction(
      () => document.querySelector('[data-testid="message"] [data-testid="message-body"]')?.textContent.includes('22.75'),
      null,
      { timeout: live },
    );
    // The readout is redrawn on the next animation frame.
    await page.waitForFunction(
      () => /22[.,]75/.test(document.querySelector('[data-metric="temperature"] [data-testid="chart-latest"]')?.textContent),
      null,
      { timeout: live },
    );
    assert.equal(await page.getByTestId('message').count(), 2);
    assert.equal(await page.getByTestId('device-status').textContent(), 'Online');
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page did not reload');

    // The range picker reloads the charts from the API and the downloads
    // follow the range.
    await page.getByTestId('range-15m').click();
    assert.equal(await page.getByTestId('range-15m').getAttribute('aria-pressed'), 'true');
    await page.waitForFunction(() => !document.querySelector('[data-telemetry]')?.dataset.loading, null, { timeout: 5000 });
    assert.ok((await points(page, 'temperature')) >= 1, 'the 15 min range still shows the readings');
    await page.getByTestId('download-metric').selectOption('temperature');
    const csv = await page.getByTestId('download-csv').getAttribute('href');
    assert.match(csv, /metric=temperature/);
    assert.match(csv, /format=csv/);
    assert.match(csv, /from=/);
    const res = await page.request.get(hub.url + csv);
    const text = await res.text();
    assert.equal(res.status(), 200, `CSV download: ${res.status()} ${text}`);
    assert.match(text, /^time,value\n.*,21\.5\n.*,22\.75\n$/s, `CSV download:\n${text}`);
    const json = await page.request.get(hub.url + (await page.getByTestId('download-json').getAttribute('href')));
    assert.equal(json.status(), 200);
    assert.equal((await json.json()).readings.length, 2);

    // Drag across a chart to zoom in; double-click to go back to live.
    await temp.scrollIntoViewIfNeeded();
    const over = await temp.locator('.u-over').boundingBox();
    await page.mouse.move(over.x + over.width * 0.2, over.y + over.height / 2);
    await page.mouse.down();
    await page.mouse.move(over.x + over.width * 0.6, over.y + over.height / 2, { steps: 5 });
    await page.mouse.up();
    await page.getByTestId('reset-zoom').waitFor({ state: 'visible', timeout: 2000 });
    assert.match(await page.locator('[data-range-label]').textContent(), /^Zoomed to /);
    await page.mouse.dblclick(over.x + over.width / 2, over.y + over.height / 2);
    await page.getByTestId('reset-zoom').waitFor({ state: 'hidden', timeout: 2000 });
    assert.equal(await page.locator('[data-range-label]').textContent(), 'Live');

    // A custom range (the form opens filled with the range shown) is fixed:
    // not live. The form holds whole seconds; its end rounds up, or the
    // readings of the last second shown would fall outside it (this test
    // sends its readings within a second of opening the form).
    const opened = Date.now();
    await page.getByTestId('range-custom').click();
    const from = page.getByLabel('From');
    await from.waitFor({ state: 'visible', timeout: 2000 });
    assert.ok(await from.inputValue(), 'the custom range form is pre-filled');
    const to = new Date(await page.locator('#range-to').inputValue()).getTime();
    assert.ok(to >= opened, `the custom range ends at ${new Date(to).toISOString()}, before the range shown (${new Date(opened).toISOString()})`);
    await page.getByRole('button', { name: 'Show range' }).click();
    assert.equal(await page.getByTestId('range-custom').getAttribute('aria-pressed'), 'true');
    assert.match(await page.locator('[data-range-label]').textContent(), /–/);
    await page.waitForFunction(() => !document.querySelector('[data-telemetry]')?.dataset.loading, null, { timeout: 5000 });
    assert.ok((await points(page, 'temperature')) >= 1, 'the custom range shows the readings');
    await page.getByTestId('range-15m').click();
    assert.equal(await page.locator('[data-range-label]').textContent(), 'Live');

    await screenshot(page, 'telemetry-light');
    await page.locator('#telemetry').screenshot({ path: path.join(artifacts, 'telemetry-section-light.png') });
    assert.deepEqual(problems.list(), []);
  } finally {
    await context.close();
  }
});

test('the device page reads well in dark mode', { timeout: 60_000 }, async () => {
  const { context, page, problems } = await newPage('dark');
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}/devices/${deviceID}#telemetry`);
    await page.locator('[data-testid="chart"][data-metric="temperature"] canvas').waitFor({ timeout: 5000 });
    await page.getByTestId('message').first().waitFor({ state: 'attached', timeout: 5000 });
    await screenshot(page, 'telemetry-dark');
    await page.locator('#telemetry').screenshot({ path: path.join(artifacts, 'telemetry-section-dark.png') });
    assert.deepEqual(problems.list(), []);
  } finally {
    await context.close();
  }
});

test('the fleet page shows activity and messages per minute live', { timeout: 60_000 }, async () => {
  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}/devices`);
    await page.locator('[data-live-status][data-state="live"]').waitFor({ timeout: 10_000 });
    await send({ temperature: 23 });
    // Stats go out every few seconds.
    await page.waitForFunction(
      () => Number(document.querySelector('[data-stat="messagesPerMinute"]')?.textContent.replace(/[^\d.]/g, '')) >= 1,
      null,
      { timeout: 15_000 },
    );
    const row = page.locator(`[data-device-id="${deviceID}"]`);
    assert.equal(await row.getByTestId('status-badge').textContent(), 'Online');
    assert.match(await row.locator('time[data-relative]').textContent(), /just now|s ago/);
    assert.deepEqual(problems.list(), []);
  } finally {
    await context.close();
  }
});

test('30 d, 90 d and 1 y chart from the rollups and say so; downloads name their tier', { timeout: 90_000 }, async () => {
  const id = 'archive-1';
  await cli(hub.dataDir, 'device', 'add', id);
  const out = await cli(hub.dataDir, 'device', 'token', '--ttl', '1h', id);
  const auth = out.trim().split('\n').pop();
  const post = async (body) => {
    const res = await fetch(`${hub.url}/devices/${id}/messages/events?api-version=2021-04-12`, {
      method: 'POST',
      headers: { Authorization: auth, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 204, `device endpoint answered ${res.status}: ${await res.text()}`);
  };
  // A reading from 20 days ago (older than the raw readings kept, 7 days)
  // and one from now.
  const day = 24 * 3600e3;
  await post({ ts: new Date(Date.now() - 20 * day).toISOString(), level: 3.5 });
  await post({ level: 4.5 });

  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}/devices/${id}#telemetry`);
    const chart = page.locator('[data-testid="chart"][data-metric="level"]');
    await chart.locator('canvas').waitFor({ timeout: 10_000 });
    for (const [range, tiers] of [
      ['7d', ['raw']],
      ['30d', ['1m', '1h']],
      ['90d', ['1m', '1h']],
      ['1y', ['1h']],
    ]) {
      await page.getByTestId(`range-${range}`).click();
      assert.equal(await page.getByTestId(`range-${range}`).getAttribute('aria-pressed'), 'true');
      await page.waitForFunction(() => !document.querySelector('[data-telemetry]')?.dataset.loading, null, { timeout: 10_000 });
      const tier = await chart.getAttribute('data-tier');
      assert.ok(tiers.includes(tier), `${range}: the chart was read from ${tier}, want one of ${tiers}`);
      const label = page.getByTestId('tier-label');
      if (tier === 'raw') {
        assert.equal(await label.isHidden(), true, `${range}: raw readings need no note`);
        assert.equal(await points(page, 'level'), 1, `${range}: the reading of 20 days ago is outside the range`);
      } else {
        assert.match(await label.textContent(), tier === '1h' ? /per hour/ : /per minute/);
        assert.equal(await points(page, 'level'), 2, `${range}: both readings are charted`);
      }
    }
    await screenshot(page, 'telemetry-1y');

    // The 90 d download holds minute rollups, and says so.
    await page.getByTestId('range-90d').click();
    await page.waitForFunction(() => !document.querySelector('[data-telemetry]')?.dataset.loading, null, { timeout: 10_000 });
    const res = await page.request.get(hub.url + (await page.getByTestId('download-csv').getAttribute('href')));
    const text = await res.text();
    assert.equal(res.status(), 200, text);
    assert.equal(res.headers()['x-fieldhub-tier'], '1m');
    assert.match(res.headers()['content-disposition'], /archive-1-level-1m\.csv/);
    assert.match(text, /^time,min,max,avg,count\n.*,3\.5,3\.5,3\.5,1\n.*,4\.5,4\.5,4\.5,1\n$/s, `CSV download:\n${text}`);
    assert.deepEqual(problems.list(), []);
  } finally {
    await context.close();
  }
});

test('the Storage page shows disk use and retention by kind', { timeout: 60_000 }, async () => {
  for (const colorScheme of ['light', 'dark']) {
    const { context, page, problems } = await newPage(colorScheme);
    try {
      await login(page, hub.url, 'admin', hub.password);
      await page.goto(`${hub.url}/devices`);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Storage' }).click();
      await page.getByTestId('storage-table').waitFor();
      const kinds = await page.getByTestId('storage-row').evaluateAll((rows) => rows.map((r) => r.dataset.kind));
      assert.deepEqual(kinds, ['message log', 'raw readings', 'rollups', 'audit log', 'alerts']);
      const log = page.locator('[data-testid="storage-row"][data-kind="message log"]');
      assert.ok(Number(await log.getAttribute('data-bytes')) > 0, 'the message log takes space');
      assert.match(await log.textContent(), /7 days \(--message-retention\)/);
      assert.match(await page.getByTestId('storage-total').textContent(), /The database takes [\d.]+ [KMG]?B/);
      await screenshot(page, `storage-${colorScheme}`);
      assert.deepEqual(problems.list(), []);
    } finally {
      await context.close();
    }
  }
});

/**
 * A time zone where it is now 11 o'clock: hours of two digits make the
 * widest time labels ("11:45am"), wider than uPlot's default 50 px between
 * ticks.
 */
function elevenOClock() {
  let offset = (((11 - new Date().getUTCHours()) % 24) + 24) % 24;
  if (offset > 14) offset -= 24;
  if (offset === 0) return 'Etc/GMT';
  return offset > 0 ? `Etc/GMT-${offset}` : `Etc/GMT+${-offset}`; // POSIX signs are inverted
}

test('time axis labels do not overlap, at 1366 px and 390 px, for every range', { timeout: 180_000 }, async () => {
  // Readings seconds apart: "fit" spans seconds, the presets minutes to days.
  await send({ humidity: 40 });
  await new Promise((r) => setTimeout(r, 1500));
  await send({ humidity: 42 });
  const spans = { '15m': 15 * 60, '1h': 3600, '6h': 6 * 3600, '24h': 24 * 3600, '7d': 7 * 24 * 3600 };
  for (const width of [1366, 390]) {
    const context = await browser.newContext({ viewport: { width, height: 900 }, timezoneId: elevenOClock() });
    const page = await context.newPage();
    try {
      await login(page, hub.url, 'admin', hub.password);
      await page.goto(`${hub.url}/devices/${deviceID}#telemetry`);
      const labels = () =>
        page.locator('figure[data-metric="humidity"]').evaluate((el) => JSON.parse(el.dataset.xLabels ?? 'null'));
      for (const range of ['fit', ...Object.keys(spans)]) {
        await page.getByTestId(`range-${range}`).click();
        // Wait for the chart to draw this range (fit: seconds, not an hour).
        await page.waitForFunction(
          ([want]) => {
            const l = JSON.parse(document.querySelector('figure[data-metric="humidity"]')?.dataset.xLabels ?? 'null');
            if (!l) return false;
            return want ? Math.abs(l.span - want) < want * 0.05 : l.span < 3600;
          },
          [spans[range]],
          { timeout: 10_000 },
        );
        const { boxes, width: plotWidth } = await labels();
        assert.ok(boxes.length >= 2, `${width}px ${range}: ${boxes.length} time labels on a ${plotWidth}px plot`);
        // Labels on the same line of the axis must not touch.
        for (const row of new Set(boxes.map((b) => b.row))) {
          const line = boxes.filter((b) => b.row === row).sort((a, b) => a.left - b.left);
          for (let i = 1; i < line.length; i++) {
            assert.ok(
              line[i - 1].right < line[i].left,
              `${width}px ${range}: "${line[i - 1].text}" (${line[i - 1].left}–${line[i - 1].right}) overlaps "${line[i].text}" (${line[i].left}–${line[i].right})`,
            );
          }
        }
      }
      await screenshot(page, `telemetry-axis-${width}`);
    } finally {
      await context.close();
    }
  }
});

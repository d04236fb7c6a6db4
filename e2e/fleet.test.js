// The fleet list, the users page and the audit log, end to end in headless
// Chromium (issue 13): tag search, search as you type, sorting, page size,
// CSV export, tables as cards at phone width, audit filters and outcome
// badges, API tokens, role changes, last sign-in, and axe-core's WCAG 2.1 AA
// rules in light and dark.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import {
  axeViolations,
  cli,
  cliWithInput,
  launchBrowser,
  login,
  screenshot,
  startHub,
  watchPage,
} from './harness.js';

let hub;
let browser;
let adminToken;

const sites = ['berlin', 'oslo', 'lyon'];

async function api(method, path, body) {
  const res = await fetch(`${hub.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

before(async () => {
  // Free ports for the device listeners, so this file runs beside others.
  hub = await startHub({ args: ['--device-addr', '127.0.0.1:0', '--mqtt-addr', ''] });
  adminToken = (await cli(hub.dataDir, 'token', 'create', '--role', 'admin', '--name', 'e2e')).trim();
  await cliWithInput(hub.dataDir, 'viewer-pass-1\n', 'user', 'add', '--role', 'viewer', '--password-stdin', 'vic');
  // 60 devices: 20 per site, kind climate or water, some without a name.
  for (let i = 0; i < 60; i++) {
    const res = await api('POST', '/api/v1/devices', {
      id: `dev-${String(i).padStart(2, '0')}`,
      name: i % 4 === 0 ? '' : `Unit ${String.fromCharCode(65 + (i % 26))}${i}`,
      tags: { site: sites[i % 3], kind: i % 2 ? 'climate' : 'water' },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }
  // A device with a long id and many tags, to stretch the phone layout.
  await api('POST', '/api/v1/devices', {
    id: 'boiler-room-sensor-with-a-very-long-identifier-0001',
    name: 'Boiler room, north wing, second floor',
    tags: { site: 'new york', building: 'headquarters-annex', note: 'a;b=c' },
  });
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

/** problems without the icon requests that going on to the next page aborts. */
function relevant(problems) {
  return problems.filter((p) => !/favicon\.svg\S* net::ERR_ABORTED/.test(p));
}

async function rowIds(page) {
  return page.getByTestId('device-row').evaluateAll((rows) => rows.map((r) => r.dataset.deviceId));
}

test('tag search: site=berlin finds the Berlin devices, typed or sent to the API', { timeout: 90_000 }, async () => {
  const res = await api('GET', `/api/v1/devices?q=${encodeURIComponent('site=berlin')}&limit=1000`);
  assert.equal(res.status, 200);
  assert.equal(res.body.total, 20);
  assert.ok(res.body.devices.every((d) => d.tags.site === 'berlin'));
  assert.equal((await api('GET', `/api/v1/devices?q=${encodeURIComponent('site=berlin kind=climate')}`)).body.total, 10);

  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'admin', hub.password);
    const search = page.getByTestId('fleet-search');
    await search.click();
    await search.pressSequentially('site=berlin kind=climate', { delay: 20 });
    // Search as you type: the results change in place, the address follows,
    // the field keeps focus and what was typed.
    await page.waitForURL((u) => u.searchParams.get('q') === 'site=berlin kind=climate');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=device-row]').length === 10);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'fleet-q');
    assert.equal(await search.inputValue(), 'site=berlin kind=climate');
    const ids = await rowIds(page);
    assert.deepEqual(
      ids,
      Array.from({ length: 60 }, (_, i) => i)
        .filter((i) => i % 3 === 0 && i % 2 === 1)
        .map((i) => `dev-${String(i).padStart(2, '0')}`),
    );
    assert.match(await page.getByTestId('fleet-count').textContent(), /^\s*10 devices\s*$/);
    assert.match(await page.locator('[data-fleet-announce]').textContent(), /10 devices match/);

    // A term the server cannot run is explained beside the field; the last
    // results stay.
    await search.fill('=berlin');
    await page.getByTestId('fleet-search-error').waitFor();
    assert.match(await page.getByTestId('fleet-search-error').textContent(), /"=berlin" has no tag name/);
    assert.equal(await search.getAttribute('aria-invalid'), 'true');
    await search.fill('berlin');
    await page.waitForURL((u) => u.searchParams.get('q') === 'berlin');
    await page.getByTestId('fleet-search-error').waitFor({ state: 'hidden' });
    assert.equal((await rowIds(page)).length, 20);
    // The status select filters in place too.
    await page.getByLabel('Status').selectOption('disabled');
    await page.getByTestId('fleet-empty').waitFor();
    assert.equal(new URL(page.url()).searchParams.get('status'), 'disabled');
    // The refused search is the one failed request.
    assert.deepEqual(relevant(problems), ['console: Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)']);
  } finally {
    await context.close();
  }
});

test('without JavaScript the search is a plain form', { timeout: 60_000 }, async () => {
  const { context, page } = await newPage({ javaScriptEnabled: false });
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.getByTestId('fleet-search').fill('site=lyon');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL((u) => u.searchParams.get('q') === 'site=lyon');
    assert.equal((await rowIds(page)).length, 20);
  } finally {
    await context.close();
  }
});

test('sorting by column, page size and pages keep each other', { timeout: 90_000 }, async () => {
  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'admin', hub.password);
    const names = async () =>
      page.getByTestId('device-row').evaluateAll((rows) => rows.map((r) => r.children[1].textContent.trim()));
    // Keyboard: tab to the Name header and press Enter.
    await page.getByTestId('sort-name').focus();
    await page.keyboard.press('Enter');
    await page.waitForURL((u) => u.searchParams.get('sort') === 'name');
    assert.equal(await page.locator('th[aria-sort]').getAttribute('aria-sort'), 'ascending');
    const asc = await names();
    assert.deepEqual(asc, [...asc].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())));
    assert.equal(asc[0], '', 'devices without a name come first');

    await page.getByTestId('sort-name').click();
    await page.waitForURL((u) => u.searchParams.get('order') === 'desc');
    assert.equal(await page.locator('th[aria-sort]').getAttribute('aria-sort'), 'descending');
    const desc = await names();
    assert.equal(desc[0], 'Unit Z51');

    // 25 per page: the order stays, and the pages carry both.
    await page.getByLabel('Per page').selectOption('25');
    await page.waitForURL((u) => u.searchParams.get('size') === '25');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=device-row]').length === 25);
    assert.deepEqual(await names(), desc.slice(0, 25));
    assert.match(await page.getByTestId('fleet-count').textContent(), /61 devices · page 1 of 3/);
    await page.getByRole('link', { name: 'Next ›' }).click();
    await page.waitForURL((u) => u.searchParams.get('page') === '2');
    const url = new URL(page.url());
    assert.deepEqual([url.searchParams.get('sort'), url.searchParams.get('order'), url.searchParams.get('size')], ['name', 'desc', '25']);
    assert.deepEqual(await names(), desc.slice(25, 50));

    // Last activity sorts newest first on the first click.
    await page.getByTestId('sort-lastActivity').click();
    await page.waitForURL((u) => u.searchParams.get('sort') === 'lastActivity' && !u.searchParams.has('page'));
    assert.equal(await page.locator('th[aria-sort]').getAttribute('aria-sort'), 'descending');
    assert.deepEqual(relevant(problems), []);
  } finally {
    await context.close();
  }
});

test('CSV export downloads the filtered list', { timeout: 60_000 }, async () => {
  const { context, page } = await newPage({ acceptDownloads: true });
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}/devices?q=${encodeURIComponent('site=oslo')}&sort=name&order=desc&size=25`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('fleet-export').click()]);
    assert.match(download.suggestedFilename(), /^fieldhub-devices-\d{8}-\d{6}\.csv$/);
    const lines = readFileSync(await download.path(), 'utf8').trimEnd().split('\n');
    assert.equal(lines[0], 'id,name,tags,enabled,status,lastActivity');
    assert.equal(lines.length, 21, 'every Oslo device, not one page of 25');
    assert.ok(lines.slice(1).every((l) => /^dev-\d\d,[^,]*,kind=(climate|water);site=oslo,true,offline,$/.test(l)), lines.join('\n'));
    const listed = await api('GET', `/api/v1/devices?q=${encodeURIComponent('site=oslo')}&sort=name&order=desc`);
    assert.deepEqual(
      lines.slice(1).map((l) => l.split(',')[0]),
      listed.body.devices.map((d) => d.id),
      'in the order of the page',
    );
  } finally {
    await context.close();
  }
});

test('advanced query: typed or pasted, by keyboard, shared by its address, a mistake pointed out', { timeout: 120_000 }, async () => {
  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}/devices`);
    // Keyboard only: Tab from the search field to the mode checkbox, Space
    // turns it on, Shift+Tab goes back, the query is typed, Enter runs it.
    const search = page.getByTestId('fleet-search');
    await search.focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'fleet-query-mode');
    await page.keyboard.press('Space');
    assert.equal(await page.getByTestId('fleet-query-mode').isChecked(), true);
    assert.match(await search.getAttribute('placeholder'), /tags\.site = 'berlin'/);
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.type("tags.site = 'berlin' AND tags.kind = 'climate'");
    await page.keyboard.press('Enter');
    await page.waitForURL((u) => u.searchParams.get('mode') === 'query' && u.searchParams.get('q')?.includes('climate'));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=device-row]').length === 10);
    const want = Array.from({ length: 60 }, (_, i) => i)
      .filter((i) => i % 3 === 0 && i % 2 === 1)
      .map((i) => `dev-${String(i).padStart(2, '0')}`);
    assert.deepEqual(await rowIds(page), want);
    assert.match(await page.getByTestId('fleet-count').textContent(), /10\s+devices match/);

    // A mistake: said beside the field, with the column; Enter puts the
    // caret there; the last results stay.
    await search.fill("tags.site = 'berlin' AN tags.kind = 'climate'");
    await page.keyboard.press('Enter');
    await page.getByTestId('fleet-search-error').waitFor();
    assert.match(await page.getByTestId('fleet-search-error').textContent(), /unexpected .*AN.* at column 22/);
    assert.equal(await search.getAttribute('aria-invalid'), 'true');
    assert.equal(await search.evaluate((el) => el.selectionStart), 21);
    assert.equal((await rowIds(page)).length, 10);

    // Pasting a whole SELECT turns the mode on by itself.
    await search.fill('');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=device-row]').length === 50);
    await page.getByTestId('fleet-query-mode').uncheck();
    await page.waitForURL((u) => !u.searchParams.has('mode'));
    await search.fill("SELECT * FROM devices WHERE tags.site = 'lyon' AND deviceId < 'dev-10'");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=device-row]').length === 3);
    assert.equal(await page.getByTestId('fleet-query-mode').isChecked(), true);
    assert.deepEqual(await rowIds(page), ['dev-02', 'dev-05', 'dev-08']);
    await page.getByTestId('fleet-search-error').waitFor({ state: 'hidden' });

    // The address is the query: opened afresh it shows the same list.
    const shared = page.url();
    const other = await context.newPage();
    await other.goto(shared);
    assert.deepEqual(await rowIds(other), ['dev-02', 'dev-05', 'dev-08']);
    assert.equal(await other.getByTestId('fleet-search').inputValue(), "SELECT * FROM devices WHERE tags.site = 'lyon' AND deviceId < 'dev-10'");
    await screenshot(page, 'fleet-query');
    // The mistake is the one failed request (a search superseded while
    // in flight is aborted on purpose).
    assert.deepEqual(
      relevant(problems).filter((p) => !/^request failed: GET \S+\/devices\?\S* net::ERR_ABORTED/.test(p)),
      ['console: Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)'],
    );
  } finally {
    await context.close();
  }
});

test('admins export the fleet with keys, and the file imports into another hub as it was', { timeout: 180_000 }, async () => {
  const { context, page } = await newPage({ acceptDownloads: true });
  const other = await startHub({ args: ['--device-addr', '127.0.0.1:0', '--mqtt-addr', ''] });
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}/devices?q=${encodeURIComponent('site=oslo')}`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('fleet-export-keys').click()]);
    assert.match(download.suggestedFilename(), /^fieldhub-devices-with-keys-\d{8}-\d{6}\.csv$/);
    const file = await download.path();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(lines[0], 'id,name,tags,enabled,status,lastActivity,authentication,primaryKey,secondaryKey,primaryThumbprint,secondaryThumbprint');
    assert.equal(lines.length, 21);
    const audit = await api('GET', '/api/v1/audit?action=device.export-keys');
    assert.equal(audit.body.entries[0].target, '20 devices');

    // Into another hub, through its import page.
    await login(page, other.url, 'admin', other.password);
    await page.goto(`${other.url}/import`);
    await page.locator('#import-file').setInputFiles(file);
    await page.getByTestId('import-apply').click();
    await page.getByTestId('import-result').waitFor();
    assert.equal(await page.getByTestId('import-result').getAttribute('data-applied'), 'true');
    assert.equal(await page.getByTestId('import-created').textContent(), '20');
    const otherToken = (await cli(other.dataDir, 'token', 'create', '--role', 'admin', '--name', 'e2e')).trim();
    const get = async (base, token, id) => (await fetch(`${base}/api/v1/devices/${id}`, { headers: { Authorization: `Bearer ${token}` } })).json();
    const [was, is] = await Promise.all([get(hub.url, adminToken, 'dev-01'), get(other.url, otherToken, 'dev-01')]);
    assert.equal(is.primaryKey, was.primaryKey);
    assert.equal(is.secondaryKey, was.secondaryKey);
    assert.deepEqual(is.tags, was.tags);

    // Viewers do not get the button. A viewer of its own: the users test
    // expects vic never to have signed in.
    await cliWithInput(hub.dataDir, 'viewer-pass-2\n', 'user', 'add', '--role', 'viewer', '--password-stdin', 'vera');
    const viewer = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const vp = await viewer.newPage();
    await login(vp, hub.url, 'vera', 'viewer-pass-2');
    assert.equal(await vp.getByTestId('fleet-export-keys').count(), 0);
    await viewer.close();
  } finally {
    await context.close();
    await other.stop();
  }
});

test('phone width: tables become cards, nothing scrolls sideways', { timeout: 90_000 }, async () => {
  const { context, page, problems } = await newPage({ viewport: { width: 390, height: 844 } });
  try {
    await login(page, hub.url, 'admin', hub.password);
    for (const path of ['/devices?q=boiler', '/devices', '/users', '/audit']) {
      await page.goto(`${hub.url}${path}`);
      const overflow = await page.evaluate(() => {
        const wide = [document.documentElement, ...document.querySelectorAll('.table-wrap, table, .card')].filter(
          (el) => el.scrollWidth > el.clientWidth + 1,
        );
        return wide.map((el) => `${el.tagName}.${el.className} ${el.scrollWidth}>${el.clientWidth}`);
      });
      assert.deepEqual(overflow, [], `${path} scrolls sideways`);
    }
    // The long device: its last activity and tags are on screen, labelled.
    await page.goto(`${hub.url}/devices?q=boiler`);
    const row = page.getByTestId('device-row').first();
    for (const label of ['Last activity', 'Tags']) {
      const cell = row.locator(`td[data-label="${label}"]`);
      const box = await cell.boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${label} is within the screen: ${JSON.stringify(box)}`);
    }
    assert.ok(await row.getByText('building=headquarters-annex').isVisible());
    // The sort links stay reachable as a line above the cards.
    assert.ok(await page.getByTestId('sort-lastActivity').isVisible());
    assert.deepEqual(relevant(problems), []);
  } finally {
    await context.close();
  }
});

test('audit: part matches, badges by meaning, aligned filters', { timeout: 90_000 }, async () => {
  // A method to a device that is not connected, and a failed sign-in.
  const call = await api('POST', '/api/v1/devices/dev-01/methods/reboot', { payload: {}, responseTimeoutInSeconds: 5 });
  assert.equal(call.status, 404);
  const failed = await browser.newContext();
  const fp = await failed.newPage();
  await fp.goto(`${hub.url}/login`);
  await fp.getByLabel('Username').fill('admin');
  await fp.getByLabel('Password').fill('wrong-password');
  await fp.getByRole('button', { name: 'Sign in' }).click();
  await fp.getByTestId('login-error').waitFor();
  await failed.close();

  const { context, page, problems } = await newPage();
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}/audit`);
    const inputs = ['Actor', 'Action', 'Target'].map((l) => page.getByLabel(l, { exact: true }));
    const tops = await Promise.all(inputs.map(async (i) => (await i.boundingBox()).y));
    const button = await page.getByRole('button', { name: 'Filter' }).boundingBox();
    assert.ok(Math.max(...tops, button.y) - Math.min(...tops, button.y) < 1, `filter fields at ${tops}, button at ${button.y}`);

    const tone = async (outcome) => {
      const badge = page.locator(`[data-testid=outcome][data-outcome="${outcome}"]`).first();
      return [await badge.getAttribute('data-tone'), await badge.evaluate((el) => getComputedStyle(el).backgroundColor)];
    };
    const [ok, notConnected, failedTone] = [await tone('ok'), await tone('not connected'), await tone('failed')];
    assert.deepEqual([ok[0], notConnected[0], failedTone[0]], ['success', 'warning', 'danger']);
    assert.equal(new Set([ok[1], notConnected[1], failedTone[1]]).size, 3, 'three different colours');

    // "ADMIN" finds user:admin and token:e2e's entries do not match.
    await page.getByLabel('Actor', { exact: true }).fill('ADMIN');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL((u) => u.searchParams.get('actor') === 'ADMIN');
    const actors = await page.locator('[data-testid=audit-row] td[data-label=Actor]').allTextContents();
    assert.ok(actors.length > 0 && actors.every((a) => a === 'user:admin'), actors.join(','));
    await page.getByLabel('Target', { exact: true }).fill('dev-0');
    await page.getByLabel('Actor', { exact: true }).fill('e2e');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL((u) => u.searchParams.get('target') === 'dev-0');
    assert.ok((await page.getByTestId('audit-row').count()) >= 10);
    assert.deepEqual(relevant(problems), []);
  } finally {
    await context.close();
  }
});

test('users page: API tokens, role change, last sign-in', { timeout: 90_000 }, async () => {
  const { context, page, problems } = await newPage();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: hub.url });
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.goto(`${hub.url}/users`);
    const lastLogin = (name) => page.locator(`[data-username="${name}"] [data-testid=user-last-login]`).textContent();
    assert.equal(await lastLogin('admin'), 'just now');
    assert.equal(await lastLogin('vic'), 'never');

    // Create a token: shown once, with a copy button that has focus.
    await page.getByTestId('add-token').locator('summary').click();
    const form = page.getByTestId('add-token-form');
    await form.getByLabel('Name').fill('grafana');
    await form.getByLabel('Role').selectOption('viewer');
    await form.getByLabel('Expires').selectOption('30d');
    await form.getByRole('button', { name: 'Create token' }).click();
    await page.getByTestId('new-token').waitFor();
    assert.equal(new URL(page.url()).pathname, '/users', 'the address is /users again, so a reload does not resubmit');
    const secret = await page.getByTestId('new-token-secret').textContent();
    assert.match(secret, /^fh_/);
    const copy = page.getByRole('button', { name: 'Copy' });
    assert.equal(await copy.evaluate((el) => el === document.activeElement), true);
    await copy.click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
    const works = await fetch(`${hub.url}/api/v1/devices?limit=1`, { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal(works.status, 200);
    const row = page.locator('[data-testid=token-row]', { hasText: 'grafana' });
    assert.match(await row.getByTestId('token-expires').textContent(), /in (29|30) d/);
    assert.equal(await row.getByTestId('token-last-used').textContent(), 'never');
    await screenshot(page, 'fleet-users-new-token');
    await page.reload();
    assert.equal(await page.getByTestId('new-token').count(), 0, 'the secret is shown once');
    assert.equal(await row.getByTestId('token-last-used').textContent(), 'just now');

    // Revoke after the confirmation.
    const again = page.locator('[data-testid=token-row]', { hasText: 'grafana' });
    await again.getByText('Revoke…').click();
    await again.getByTestId('confirm-revoke-token').click();
    await page.waitForURL('**/users');
    assert.match(await page.getByTestId('flash').textContent(), /revoked/);
    assert.equal(await page.locator('[data-testid=token-row][data-state=revoked]', { hasText: 'grafana' }).count(), 1);
    const refused = await fetch(`${hub.url}/api/v1/devices?limit=1`, { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal(refused.status, 401);

    // Make vic an operator.
    const vic = page.locator('[data-username="vic"]');
    await vic.getByLabel('Role of vic').selectOption('operator');
    await vic.getByRole('button', { name: 'Save role of vic' }).click();
    await page.waitForURL('**/users');
    assert.match(await page.getByTestId('flash').textContent(), /vic is now operator \(was viewer\)/);
    assert.equal(await page.locator('[data-username="vic"]').getByLabel('Role of vic').inputValue(), 'operator');
    assert.deepEqual(relevant(problems), []);
  } finally {
    await context.close();
  }
});

test('WCAG 2.1 AA (axe-core) on the fleet, users and audit pages, light and dark, wide and phone', { timeout: 600_000 }, async () => {
  const found = [];
  for (const colorScheme of ['light', 'dark']) {
    for (const width of [1366, 390]) {
      const { context, page } = await newPage({ bypassCSP: true, colorScheme, viewport: { width, height: 900 } });
      try {
        await login(page, hub.url, 'admin', hub.password);
        for (const [name, path] of [
          ['fleet', '/devices?sort=name'],
          ['fleet-query', `/devices?mode=query&q=${encodeURIComponent("tags.site = 'oslo'")}`],
          ['fleet-query-error', `/devices?mode=query&q=${encodeURIComponent("tags.site = 'oslo' AN")}`],
          ['users', '/users'],
          ['audit', '/audit'],
        ]) {
          await page.goto(`${hub.url}${path}`);
          if (name === 'users') {
            await page.getByTestId('add-token').locator('summary').click(); // the open form too
          }
          for (const v of await axeViolations(page)) found.push(`${name} ${colorScheme} ${width}px: ${v}`);
          await screenshot(page, `fleet-${name}-${width}-${colorScheme}`);
        }
      } finally {
        await context.close();
      }
    }
  }
  assert.deepEqual(found, []);
});

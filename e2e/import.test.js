// Bulk import from the Import page, end to end in headless Chromium against
// the real binary: a file with mistakes shows each row's error and changes
// nothing; the corrected file previews, then an admin imports it; an
// operator can preview but not import. axe-core finds nothing serious.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { axeViolations, cli, cliWithInput, launchBrowser, login, screenshot, startHub, watchPage } from './harness.js';

let hub;
let browser;

before(async () => {
  hub = await startHub();
  await cli(hub.dataDir, 'device', 'add', '--name', 'Old name', 'pump-1');
  await cliWithInput(hub.dataDir, 'operator-pass-1\n', 'user', 'add', '--role', 'operator', '--password-stdin', 'olga');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

const file = (body) => ({ name: 'fleet.csv', mimeType: 'text/csv', buffer: Buffer.from(body) });

test('an admin previews a file, sees its mistakes, fixes them and imports it', { timeout: 180_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
  const page = await context.newPage();
  const problems = watchPage(page);
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.getByRole('link', { name: 'Import' }).click();
    await page.waitForURL(/\/import$/);
    assert.deepEqual(await axeViolations(page), []);

    await page.getByLabel(/File/).setInputFiles(file('id,name,tags,enabled\npump-1,New name,site=berlin,true\nbad id,x,,\npump-2,,site,maybe\n'));
    await page.getByTestId('import-apply').click();
    await page.getByTestId('import-result').waitFor();
    assert.equal(await page.getByTestId('import-result').getAttribute('data-applied'), 'false');
    const errors = page.getByTestId('import-error-row');
    assert.equal(await errors.count(), 2);
    assert.match(await errors.nth(0).textContent(), /^3\s*id.*contains ' '/);
    assert.match(await errors.nth(1).textContent(), /^4\s*tags.*not key=value/);
    assert.deepEqual(await axeViolations(page), []);
    await screenshot(page, 'import-errors');

    await page.getByLabel(/File/).setInputFiles(file('id,name,tags,enabled\npump-1,New name,site=berlin,true\npump-2,Second,site=paris;floor=2,false\n'));
    await page.getByTestId('import-preview').click();
    await page.locator('[data-testid="import-result"][data-applied="false"]').waitFor();
    assert.equal(await page.getByTestId('import-created').textContent(), '1');
    assert.equal(await page.getByTestId('import-updated').textContent(), '1');
    await page.getByLabel(/File/).setInputFiles(file('id,name,tags,enabled\npump-1,New name,site=berlin,true\npump-2,Second,site=paris;floor=2,false\n'));
    await page.getByTestId('import-apply').click();
    await page.locator('[data-testid="import-result"][data-applied="true"]').waitFor();
    await screenshot(page, 'import-done');
    const shown = await cli(hub.dataDir, 'device', 'show', 'pump-2');
    assert.match(shown, /Second/);
    assert.deepEqual(problems.filter((p) => !/status of 422|ERR_ABORTED/.test(p)), []);
  } finally {
    await context.close();
  }
});

test('an operator previews but cannot import', { timeout: 60_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, bypassCSP: true });
  const page = await context.newPage();
  try {
    await login(page, hub.url, 'olga', 'operator-pass-1');
    await page.goto(`${hub.url}/import`);
    assert.equal(await page.getByTestId('import-apply').count(), 0);
    await page.getByLabel(/File/).setInputFiles(file('id\nop-1\n'));
    await page.getByTestId('import-preview').click();
    await page.locator('[data-testid="import-result"][data-applied="false"]').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px at 390 px`);
    assert.deepEqual(await axeViolations(page), []);
    await screenshot(page, 'import-phone');
  } finally {
    await context.close();
  }
});

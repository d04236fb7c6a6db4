// The Policies page end to end in headless Chromium against the real
// binary: an admin adds a shared access policy, its keys stay hidden until
// asked, then rotates a key and removes it, each after a confirmation; a
// refused form keeps what was typed. axe-core finds nothing serious in
// light, dark and phone width; screenshots in e2e/artifacts.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { axeViolations, launchBrowser, login, screenshot, startHub, watchPage } from './harness.js';

let hub;
let browser;

before(async () => {
  hub = await startHub();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

/** watchPage's problems less the 422 a refused form is answered with on purpose. */
function realProblems(problems) {
  return problems.filter((p) => !p.endsWith('net::ERR_ABORTED') && !/status of 422/.test(p));
}

test('an admin adds, reveals, rotates and removes a policy', { timeout: 120_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
  const page = await context.newPage();
  const problems = watchPage(page);
  try {
    await login(page, hub.url, 'admin', hub.password);
    await page.getByRole('link', { name: 'Policies' }).click();
    await page.waitForURL(/\/policies$/);
    await page.getByTestId('policies-empty').waitFor();
    assert.deepEqual(await axeViolations(page), []);

    // A name no policy may have: the form comes back as typed.
    const form = page.getByTestId('policy-form');
    await form.getByLabel(/^Name/).fill('back end');
    await form.getByLabel('registryRead').check();
    await page.evaluate(() => document.getElementById('p-name').removeAttribute('pattern'));
    await form.getByRole('button', { name: 'Add policy' }).click();
    await page.getByTestId('policy-error').waitFor();
    assert.match(await page.getByTestId('policy-error').textContent(), /policy name contains ' ' at position 5/);
    assert.equal(await form.getByLabel(/^Name/).inputValue(), 'back end');
    assert.ok(await form.getByLabel('registryRead').isChecked());

    await form.getByLabel(/^Name/).fill('backend');
    await form.getByLabel('serviceConnect').check();
    await form.getByRole('button', { name: 'Add policy' }).click();
    const row = page.locator('[data-testid="policy-row"][data-policy="backend"]');
    await row.waitFor();
    assert.match(await row.textContent(), /registryRead, serviceConnect/);
    assert.equal(await page.getByTestId('policy-connection-string').count(), 0, 'keys hidden until asked');

    await row.getByTestId('show-policy-connection-string').click();
    const cs = await row.getByTestId('policy-connection-string').textContent();
    assert.match(cs, /^HostName=localhost:8443;SharedAccessKeyName=backend;SharedAccessKey=[A-Za-z0-9+/]{43}=$/);
    await screenshot(page, 'policies');
    assert.deepEqual(await axeViolations(page), []);

    await row.getByText('Rotate primary key…').click();
    await row.getByTestId('confirm-rotate-primary').click();
    await page.waitForURL(/\/policies$/);
    await row.getByTestId('show-policy-connection-string').click();
    const rotated = await row.getByTestId('policy-connection-string').textContent();
    assert.notEqual(rotated, cs);

    await row.getByText('Remove…').click();
    await row.getByTestId('confirm-remove-policy').click();
    await page.getByTestId('policies-empty').waitFor();
    assert.deepEqual(realProblems(problems), []);
  } finally {
    await context.close();
  }
});

for (const [name, opts] of [
  ['dark', { colorScheme: 'dark', viewport: { width: 1280, height: 900 } }],
  ['phone', { viewport: { width: 390, height: 844 } }],
]) {
  test(`the policies page in ${name}`, { timeout: 60_000 }, async () => {
    const context = await browser.newContext({ bypassCSP: true, ...opts });
    const page = await context.newPage();
    try {
      await login(page, hub.url, 'admin', hub.password);
      await page.goto(`${hub.url}/policies`);
      await page.getByTestId('policy-form').getByLabel(/^Name/).fill(`p-${name}`);
      await page.getByTestId('policy-form').getByLabel('registryWrite').check();
      await page.getByTestId('policy-form').getByRole('button', { name: 'Add policy' }).click();
      const row = page.locator(`[data-testid="policy-row"][data-policy="p-${name}"]`);
      await row.getByTestId('show-policy-connection-string').click();
      await row.getByTestId('policy-connection-string').waitFor();
      await screenshot(page, `policies-${name}`);
      assert.deepEqual(await axeViolations(page), []);
    } finally {
      await context.close();
    }
  });
}

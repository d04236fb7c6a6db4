// Helpers for browser tests (node --test e2e/): build the real binary, start
// hubs on free ports with temporary data folders, drive headless Chromium.
//
// Every hub and data folder a test process starts is removed when it exits,
// even after a failed assertion. Set FIELDHUB_E2E_KEEP=1 to keep data folders,
// FIELDHUB_BIN to test a prebuilt binary, CHROMIUM to use another browser.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const run = promisify(execFile);

/** The repository root. */
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Where tests may write screenshots, traces and the binary (git-ignored). */
export const artifacts = path.join(root, 'e2e', 'artifacts');

const startTimeoutMs = 30_000;
const stopTimeoutMs = 10_000;

const liveHubs = new Set();
const tempDirs = new Set();

process.on('exit', () => {
  for (const child of liveHubs) child.kill('SIGKILL');
  if (process.env.FIELDHUB_E2E_KEEP) return;
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

let built = null;

/**
 * Builds ./cmd/fieldhub into e2e/artifacts/fieldhub once per test process
 * (the Go build cache makes later builds cheap) and returns its path.
 */
export function buildBinary() {
  if (process.env.FIELDHUB_BIN) return Promise.resolve(path.resolve(process.env.FIELDHUB_BIN));
  built ??= (async () => {
    mkdirSync(artifacts, { recursive: true });
    const out = path.join(artifacts, 'fieldhub');
    // Build beside and rename, so a test file running in parallel never
    // executes a half-written binary.
    const tmp = `${out}.${process.pid}.tmp`;
    try {
      await run('go', ['build', '-o', tmp, './cmd/fieldhub'], { cwd: root, maxBuffer: 16 << 20 });
    } catch (err) {
      throw new Error(`go build ./cmd/fieldhub failed:\n${err.stderr || err.message}`);
    }
    renameSync(tmp, out);
    return out;
  })();
  return built;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A new empty folder that is removed when the test process exits. */
export function tempDir(prefix = 'fieldhub-e2e-') {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Whether url answers 200. Over HTTPS the certificate is not checked: this
 * only asks whether the hub is up (its CA is written while it starts).
 */
async function healthy(url) {
  if (!url.startsWith('https:')) return (await fetch(url)).ok;
  return new Promise((resolve, reject) => {
    httpsGet(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    }).on('error', reject);
  });
}

/**
 * Starts `fieldhub serve` on a free loopback port and waits until /healthz
 * answers.
 *
 * @param {object} [opts]
 * @param {boolean} [opts.demo] pass --demo
 * @param {boolean} [opts.dashboardTLS] pass --dashboard-tls: url is https, served with the
 *   certificate of the CA in <dataDir>/tls/ca.pem (browsers: newContext({ ignoreHTTPSErrors: true }))
 * @param {string} [opts.dataDir] reuse a data folder (restart tests); default: a new temp folder
 * @param {string[]} [opts.args] more serve flags
 * @param {Record<string,string>} [opts.env] more environment variables
 * @returns {Promise<{url: string, port: number, password: string|null, dataDir: string,
 *   logs(): string, waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>,
 *   stop(): Promise<number|null>, kill(): Promise<void>}>}
 *   password is the admin password printed on first start (null when the
 *   data folder already had users); stop() sends SIGTERM and resolves with the
 *   exit code; kill() sends SIGKILL (crash tests).
 */
export async function startHub(opts = {}) {
  const bin = await buildBinary();
  const dataDir = opts.dataDir ?? tempDir();
  const port = await freePort();
  const args = ['serve', '--addr', `127.0.0.1:${port}`, '--data', dataDir];
  if (opts.demo) args.push('--demo');
  if (opts.dashboardTLS) args.push('--dashboard-tls');
  args.push(...(opts.args ?? []));

  const child = spawn(bin, args, {
    cwd: root,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveHubs.add(child);
  let output = '';
  const listeners = new Set();
  const onData = (chunk) => {
    output += chunk.toString();
    for (const l of listeners) l();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      liveHubs.delete(child);
      resolve(code ?? signal);
    });
  });
  let exitCode;
  exited.then((c) => {
    exitCode = c;
  });

  const url = `${opts.dashboardTLS ? 'https' : 'http'}://127.0.0.1:${port}`;
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (exitCode !== undefined) {
      throw new Error(`fieldhub ${args.join(' ')} exited (${exitCode}) before it was healthy:\n${output}`);
    }
    try {
      if (await healthy(`${url}/healthz`)) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`fieldhub did not answer /healthz within ${startTimeoutMs} ms:\n${output}`);
    }
    await sleep(100);
  }

  const pw = output.match(/admin password: ([^\s"]+)/);
  return {
    url,
    port,
    password: pw ? pw[1] : null,
    dataDir,
    logs: () => output,
    waitForLog(re, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = output.match(re);
          if (!m) return false;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(m);
          return true;
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no log line matching ${re} within ${timeoutMs} ms:\n${output}`));
        }, timeoutMs);
        if (!check()) listeners.add(check);
      });
    },
    async stop() {
      if (exitCode !== undefined) return exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (exitCode !== undefined) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Chromium flags for a closed network: nothing phones home. */
export const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches headless Debian Chromium through playwright-core. */
export function launchBrowser(opts = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: chromiumArgs,
    ...opts,
  });
}

/**
 * Signs in through the login form and waits for the page after it. Throws
 * with the page's error message when the hub refuses.
 */
export async function login(page, url, username, password) {
  await page.goto(`${url}/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/login'), { timeout: 10_000 }).catch(async () => {
    const msg = await page
      .getByTestId('login-error')
      .textContent({ timeout: 1000 })
      .catch(() => null);
    throw new Error(`login as ${username} failed: ${msg ?? `still on ${page.url()}`}`);
  });
}

/**
 * Runs the binary's CLI against a data folder (FIELDHUB_DATA) and returns
 * its stdout; throws with stderr when it exits non-zero.
 * Example: await cli(hub.dataDir, 'device', 'add', 'dev1')
 */
export function cli(dataDir, ...args) {
  return cliWithInput(dataDir, null, ...args);
}

/**
 * Like cli, with text on standard input (for --password-stdin).
 * Example: await cliWithInput(dir, 'secret-pass\n', 'user', 'add', '--role', 'viewer', '--password-stdin', 'vic')
 */
export async function cliWithInput(dataDir, input, ...args) {
  const bin = await buildBinary();
  return new Promise((resolve, reject) => {
    const child = execFile(
      bin,
      args,
      { cwd: root, env: { ...process.env, FIELDHUB_DATA: dataDir }, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`fieldhub ${args.join(' ')} failed (${err.code}):\n${stderr}`));
        } else {
          resolve(stdout);
        }
      },
    );
    if (input !== null) child.stdin.end(input);
    else child.stdin.end();
  });
}

/**
 * Records browser console errors and failed requests on a page, so a test
 * can assert a clean run: `const problems = watchPage(page); … assert.deepEqual(problems, [])`.
 */
export function watchPage(page) {
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => {
    // Navigations away abort open SSE streams; that is not a failure.
    if (req.resourceType() === 'eventsource') return;
    problems.push(`request failed: ${req.method()} ${req.url()} ${req.failure()?.errorText ?? ''}`);
  });
  return problems;
}

/** Saves a full-page screenshot to e2e/artifacts/<name>.png and returns its path. */
export async function screenshot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** axe-core's script, injected into pages by axeViolations. */
export const axeScript = path.join(root, 'node_modules', 'axe-core', 'axe.min.js');

/**
 * Runs axe-core (WCAG 2.0/2.1 A and AA rules) on the page and returns its
 * serious and critical violations as "rule: target…" lines, [] when none.
 * The page's Content-Security-Policy forbids injected scripts: open the page
 * in a context made with newContext({ bypassCSP: true }).
 */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.addScriptTag({ path: axeScript });
  }
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  );
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${n.target.join(' ')} — ${n.failureSummary?.split('\n')[1]?.trim() ?? v.help}`));
}

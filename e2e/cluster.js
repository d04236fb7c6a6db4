// Helpers for cluster tests: a throwaway PostgreSQL server, a nats-server
// and a TCP proxy whose target a test moves, all on loopback and all gone
// when the test process exits. (scripts/cluster.sh starts the same for
// people.)
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './harness.js';

/** Where Debian's postgresql-15 package puts the server's programs. */
export const pgBin = '/usr/lib/postgresql/15/bin';

const cleanups = [];
process.on('exit', () => {
  for (const fn of cleanups.reverse()) {
    try {
      fn();
    } catch {
      // Best effort at exit.
    }
  }
});

/**
 * Why the cluster tests cannot run here ("" when they can): PostgreSQL 15
 * and nats-server are needed (make postgres nats-server installs them).
 */
export function clusterMissing() {
  if (!existsSync(path.join(pgBin, 'initdb'))) return `PostgreSQL 15 is not installed (no ${pgBin}/initdb); run make postgres`;
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'nats-server is not installed; run make nats-server';
  }
  return '';
}

/**
 * Starts a PostgreSQL server in a new folder (as the postgres user when
 * this process is root: the server refuses root) and returns the URL of
 * its postgres database and stop().
 */
export async function startPostgres() {
  const dir = mkdtempSync(path.join(tmpdir(), 'fieldhub-e2e-pg-'));
  let asUser = [];
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(dir, uid, gid);
    asUser = ['runuser', '-u', 'postgres', '--'];
  }
  const pg = (prog, ...args) => {
    const argv = [...asUser, path.join(pgBin, prog), ...args];
    execFileSync(argv[0], argv.slice(1), { stdio: 'pipe', timeout: 60_000 });
  };
  const data = path.join(dir, 'data');
  pg('initdb', '-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8');
  const port = await freePort();
  // fsync off: the tests kill hubs, never the database's machine.
  pg('pg_ctl', '-D', data, '-l', path.join(dir, 'log'), '-w', '-t', '60',
    '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`, 'start');
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      pg('pg_ctl', '-D', data, '-m', 'immediate', '-w', 'stop');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  cleanups.push(stop);
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable`, stop };
}

/** Starts nats-server on a free loopback port; returns its URL and stop(). */
export async function startNats() {
  const port = await freePort();
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  child.unref(); // the test process ends without waiting for it (stop, or exit, kills it)
  const stop = () => child.kill('SIGKILL');
  cleanups.push(stop);
  for (const deadline = Date.now() + 10_000; ; ) {
    if (await canConnect(port)) break;
    if (Date.now() > deadline) throw new Error('nats-server did not listen within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `nats://127.0.0.1:${port}`, stop };
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/**
 * A TCP proxy on a free loopback port to target (a port), standing in for
 * a load balancer in front of a cluster's instances. moveTo(port, opts)
 * sends new connections to another port and cuts the clients' current ones
 * (so that they reconnect, through the proxy, to the new target); with
 * opts.keepUpstream the connections to the old target are left open and
 * silent, as a device's old connection is after its network changed.
 * upstreamClosed() resolves when every connection to an old target kept
 * open has been closed by that target.
 */
export async function startProxy(target) {
  const kept = new Set();
  const live = new Set();
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    const pair = { client, upstream };
    live.add(pair);
    client.on('data', (b) => upstream.write(b));
    upstream.on('data', (b) => {
      if (!client.destroyed) client.write(b);
    });
    const end = () => {
      live.delete(pair);
      client.destroy();
      if (!kept.has(upstream)) upstream.destroy();
    };
    client.on('error', end);
    client.on('close', end);
    upstream.on('error', () => upstream.destroy());
    upstream.on('close', () => {
      kept.delete(upstream);
      if (!client.destroyed) client.destroy();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  return {
    port: server.address().port,
    moveTo(port, { keepUpstream = false } = {}) {
      target = port;
      for (const pair of [...live]) {
        if (keepUpstream) kept.add(pair.upstream);
        pair.client.destroy();
      }
    },
    async upstreamClosed(timeoutMs = 30_000) {
      for (const deadline = Date.now() + timeoutMs; kept.size > 0; ) {
        if (Date.now() > deadline) throw new Error(`${kept.size} connection(s) to the old target still open after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close() {
      for (const pair of live) pair.client.destroy();
      server.close();
    },
  };
}

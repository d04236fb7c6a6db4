// Conformance: the unmodified Azure IoT service SDK for Node (azure-iothub,
// pinned in package.json) against the real binary's service API. A back-end
// app written as for IoT Hub (e2e/apps/iothub-backend.mjs) runs with only
// its connection string — printed by `fieldhub policy add` — pointing at
// the hub, and the hub's CA trusted through NODE_EXTRA_CA_CERTS, as any Node
// app trusts a private CA; a device connected through the unmodified device
// SDK over MQTT answers its direct methods. The service SDK dials port 443
// whatever the connection string says, so the hub's device listener runs on
// port 443 (which needs root) of a loopback address of its own, 127.0.0.4, so
// that the other conformance tests' hubs on 127.0.0.1-3 never collide; the
// connection strings name that address, which --hostname puts into the
// certificate.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import deviceSdk from 'azure-iot-device';
import mqttTransport from 'azure-iot-device-mqtt';
import { cli, freePort, root, startHub } from './harness.js';

const { Client } = deviceSdk; // CommonJS packages
const { Mqtt } = mqttTransport;

const host = '127.0.0.4';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = isRoot ? false : 'the service SDK dials port 443: run as root (CI does) so that the hub can listen there';

let hub;
let connectionString;
let device; // the device SDK's client of svc-dev, answering 'reboot'
let adminToken;

before(async () => {
  if (!isRoot) return;
  const mqttPort = await freePort();
  // Another run of this file may hold the port for a while: wait for it.
  for (const deadline = Date.now() + 60_000; !hub; ) {
    try {
      hub = await startHub({ args: ['--mqtt-addr', `${host}:${mqttPort}`, '--device-addr', `${host}:443`, '--hostname', host] });
    } catch (err) {
      if (!/address already in use/.test(err.message) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  const out = await cli(hub.dataDir, 'policy', 'add', 'backend', '--rights', 'registryRead,registryWrite,serviceConnect');
  connectionString = out.trim().split('\n').pop();
  // Exactly as printed: the device listener's host, without the port 443.
  assert.match(connectionString, /^HostName=127\.0\.0\.4;SharedAccessKeyName=backend;SharedAccessKey=[A-Za-z0-9+/]{43}=$/);
  adminToken = (await cli(hub.dataDir, 'token', 'create', '--role', 'admin', '--name', 'svc-e2e')).trim().split('\n').pop();

  const deviceCs = (await cli(hub.dataDir, 'device', 'add', 'svc-dev')).trim().split('\n').pop();
  device = Client.fromConnectionString(deviceCs, Mqtt);
  await device.setOptions({ ca: readFileSync(path.join(hub.dataDir, 'tls', 'ca.pem'), 'utf8') });
  await device.open();
  device.onDeviceMethod('reboot', (req, res) => res.send(200, { rebooted: true, got: req.payload }, () => {}));
});

after(async () => {
  await device?.close();
  await hub?.stop();
});

/** Runs one step of the back-end app and returns what it printed last (JSON). */
function backend(step) {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(root, 'e2e', 'apps', 'iothub-backend.mjs'), step],
      {
        cwd: root,
        env: { ...process.env, IOTHUB_CONNECTION_STRING: connectionString, NODE_EXTRA_CA_CERTS: path.join(hub.dataDir, 'tls', 'ca.pem') },
        timeout: 120_000,
      },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`iothub-backend.mjs ${step} failed (${err.code}):\n${stderr}\n${stdout}`));
        else resolve(JSON.parse(stdout.trim().split('\n').pop()));
      },
    );
  });
}

/** The audit log's entries by actor, oldest first, as "action target". */
async function audit(actor) {
  const res = await fetch(`${hub.url}/api/v1/audit?actor=${encodeURIComponent(actor)}`, { headers: { Authorization: `Bearer ${adminToken}` } });
  assert.equal(res.status, 200);
  const { entries } = await res.json();
  return entries.filter((e) => e.actor === actor).map((e) => `${e.action} ${e.target}`).reverse();
}

test('Registry: create, get, update, list and delete a device', { skip, timeout: 120_000 }, async () => {
  const out = await backend('registry');
  assert.ok(out.generationId);
  const log = (await audit('policy:backend')).filter((e) => e.endsWith(' svc-1'));
  assert.deepEqual(log, ['device.create svc-1', 'device.update svc-1', 'device.delete svc-1']);
});

test('Registry: getTwin, updateTwin with its etag, createQuery page by page', { skip, timeout: 120_000 }, async () => {
  const out = await backend('twins');
  assert.ok(out.pages >= 2, `a page of one at a time: ${out.pages} pages`);
});

test('Client.invokeDeviceMethod reaches the device SDK and returns its answer', { skip, timeout: 120_000 }, async () => {
  const out = await backend('method');
  assert.deepEqual(out, { status: 200, payload: { rebooted: true, got: { delay: 2 } } });
  assert.ok((await audit('policy:backend')).includes('method.invoke svc-dev/reboot'));
});

test('JobClient: scheduleDeviceMethod and scheduleTwinUpdate with a query, polled to completion', { skip, timeout: 180_000 }, async () => {
  const out = await backend('jobs');
  assert.equal(out.method.succeededCount, 1);
  assert.equal(out.twin.succeededCount, 2);
  // The jobs are Fieldhub's: the operator API (and the Jobs page) has them, made by the policy.
  const res = await fetch(`${hub.url}/api/v1/jobs/svc-job-twin`, { headers: { Authorization: `Bearer ${adminToken}` } });
  const { job } = await res.json();
  assert.equal(res.status, 200, JSON.stringify(job));
  assert.equal(job.createdBy, 'policy:backend');
  assert.equal(job.counts.succeeded, 2);
});

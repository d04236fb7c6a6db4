// Conformance: the unmodified Azure IoT device SDK for Node sends single and
// batch telemetry over HTTPS to the real binary, and the messages (with their
// properties) and readings appear through the operator API.
//
// The SDK's HTTP transport always dials port 443 (it cannot take a port from
// HostName), so the hub's device listener runs on port 443 of a loopback
// address of its own (127.0.0.3, so that the other conformance tests' hubs on
// 127.0.0.1/127.0.0.2 never collide) and the connection string names that
// address, which --hostname puts into the certificate. The hub's generated CA
// is handed to the SDK with setOptions({ca}), equivalent to
// NODE_EXTRA_CA_CERTS=<data>/tls/ca.pem.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import deviceSdk from 'azure-iot-device';
import deviceHttp from 'azure-iot-device-http';
import { cli, startHub } from './harness.js';

const { Client, Message } = deviceSdk;
const { Http } = deviceHttp;
const deviceId = 'http-sdk';
const host = '127.0.0.3';

let hub;
let client;
let viewerToken;

before(async () => {
  hub = await startHub({ args: ['--device-addr', `${host}:443`, '--hostname', host, '--mqtt-addr', ''] });
  const cs = await cli(hub.dataDir, 'device', 'add', deviceId);
  const key = cs.match(/SharedAccessKey=(\S+)/)[1];
  viewerToken = (await cli(hub.dataDir, 'token', 'create', '--role', 'viewer', '--name', 'conformance-http')).trim();
  client = Client.fromConnectionString(`HostName=${host};DeviceId=${deviceId};SharedAccessKey=${key}`, Http);
  // The HTTP transport calls setOptions' callback only when the options carry
  // receiver settings, so some are given (telemetry needs no polling).
  await client.setOptions({
    ca: readFileSync(path.join(hub.dataDir, 'tls', 'ca.pem'), 'utf8'),
    http: { receivePolicy: { manualPolling: true } },
  });
  await client.open();
});

after(async () => {
  await client?.close().catch(() => {});
  await hub?.stop();
});

async function api(p) {
  const res = await fetch(`${hub.url}/api/v1/devices/${deviceId}${p}`, {
    headers: { Authorization: `Bearer ${viewerToken}` },
  });
  assert.equal(res.status, 200, `GET ${p}: ${res.status} ${await res.clone().text()}`);
  return res.json();
}

function telemetry(values, props = {}) {
  const m = new Message(JSON.stringify(values));
  m.contentType = 'application/json';
  m.contentEncoding = 'utf-8';
  for (const [k, v] of Object.entries(props)) m.properties.add(k, v);
  return m;
}

test('a single message arrives with its properties and readings', async () => {
  const m = telemetry({ temperature: 21.5, humidity: 40, engine: { rpm: 900 } }, { level: 'info' });
  m.messageId = 'single-1';
  m.correlationId = 'corr-1';
  await client.sendEvent(m);

  const { messages } = await api('/messages?limit=10');
  const got = messages.find((x) => x.messageId === 'single-1');
  assert.ok(got, `message single-1 not in ${JSON.stringify(messages)}`);
  assert.equal(got.correlationId, 'corr-1');
  assert.equal(got.authMethod, 'sas-primary');
  assert.equal(got.properties.level, 'info');
  assert.equal(got.bodyBase64, undefined);
  assert.deepEqual(JSON.parse(got.body), { temperature: 21.5, humidity: 40, engine: { rpm: 900 } });

  const { metrics } = await api('/metrics');
  const byName = Object.fromEntries(metrics.map((x) => [x.name, x]));
  assert.equal(byName.temperature?.lastValue, 21.5);
  assert.equal(byName['engine.rpm']?.lastValue, 900);
});

test('a batch arrives as separate messages in order', async () => {
  // The SDK's batch format carries the body and application properties only
  // (no message id), so the messages are told apart by their bodies.
  const batch = [1, 2, 3].map((i) => telemetry({ temperature: 20 + i, seq: i }, { batch: 'yes' }));
  await client.sendEventBatch(batch);

  const { messages } = await api('/messages?limit=10');
  const batched = messages.filter((x) => x.properties.batch === 'yes');
  assert.deepEqual(
    batched.map((x) => JSON.parse(x.body).seq),
    [3, 2, 1],
    'three messages, newest first',
  );
  for (const x of batched) assert.equal(x.authMethod, 'sas-primary');

  const from = Date.now() - 3600_000;
  const readings = await api(`/readings?metric=seq&from=${from}&points=10`);
  const count = readings.buckets.reduce((n, b) => n + b.count, 0);
  assert.equal(count, 3);
  assert.equal(Math.max(...readings.buckets.map((b) => b.max)), 3);

  const temps = await api(`/readings?metric=temperature&from=${from}&points=1`);
  assert.equal(temps.buckets[0].count, 4, 'one single and three batched temperatures');
});

test('a message over 256 KB is refused with the hub\'s reason, not a broken connection', async () => {
  // The hub refuses from Content-Length, then reads and drops the body so
  // that the SDK, still writing it, reads the 413 (MessageTooLargeError).
  for (const size of [300 * 1024, 2 * 1024 * 1024]) {
    await assert.rejects(client.sendEvent(new Message('x'.repeat(size))), (err) => {
      assert.equal(err.name, 'MessageTooLargeError', `${size} bytes: ${err.name}: ${err.message}`);
      assert.equal(err.response?.statusCode, 413);
      assert.match(String(err.responseBody), /larger than \d+ bytes.*256 KB/);
      return true;
    });
  }
  // The connection after it works as before.
  const m = telemetry({ temperature: 30 });
  m.messageId = 'after-too-large';
  await client.sendEvent(m);
  const { messages } = await api('/messages?limit=10');
  assert.ok(messages.some((x) => x.messageId === 'after-too-large'));
});

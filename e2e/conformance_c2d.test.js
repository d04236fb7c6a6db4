// Conformance: the unmodified Azure IoT device SDK for Node, over HTTPS,
// receives cloud-to-device messages sent through the operator API, and its
// complete, reject and abandon each show up as the right state.
//
// The SDK's HTTP transport always dials port 443 (it cannot take a port from
// HostName). The hub's device listener runs on 127.0.0.2:443 with
// --hostname 127.0.0.2 (an IP SAN in the hub's certificate, and the host SAS
// tokens must name), so this test does not collide with others that use
// localhost:443. The hub's test CA is handed to the SDK with setOptions({ca}),
// the per-client equivalent of NODE_EXTRA_CA_CERTS=<data>/tls/ca.pem.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import deviceSdk from 'azure-iot-device';
import deviceHttp from 'azure-iot-device-http';
import { cli, startHub } from './harness.js';

const { Client } = deviceSdk;
const { Http } = deviceHttp;

const host = '127.0.0.2';
let hub;
let client;
let apiToken;

before(async () => {
  hub = await startHub({ args: ['--device-addr', `${host}:443`, '--hostname', host, '--mqtt-addr', '127.0.0.1:0'] });
  const cs = await cli(hub.dataDir, 'device', 'add', 'c2d-sdk');
  const key = cs.match(/SharedAccessKey=(\S+)/)[1];
  apiToken = (await cli(hub.dataDir, 'token', 'create', '--role', 'operator', '--name', 'conformance')).trim();
  client = Client.fromConnectionString(`HostName=${host};DeviceId=c2d-sdk;SharedAccessKey=${key}`, Http);
  // The HTTP transport calls setOptions' callback only when receive options are
  // present too (SDK quirk), so pass the default poll interval along with the CA.
  await client.setOptions({
    ca: readFileSync(path.join(hub.dataDir, 'tls', 'ca.pem'), 'utf8'),
    http: { receivePolicy: { interval: 1 } },
  });
  await client.open();
});

after(async () => {
  await client?.close().catch(() => {});
  await hub?.stop();
});

async function api(method, p, body) {
  const res = await fetch(`${hub.url}/api/v1/devices/c2d-sdk${p}`, {
    method,
    headers: { Authorization: `Bearer ${apiToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function stateOf(id) {
  const { body } = await api('GET', '/cloud-messages');
  return body.messages.find((m) => m.id === id);
}

async function waitForState(id, state, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await stateOf(id);
    if (m?.state === state) return m;
    if (Date.now() > deadline) assert.fail(`message ${id} is ${m?.state}, want ${state}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The next message the SDK receives. The listener is removed as soon as one
 * arrives, which stops the SDK's polling, so the settlement under test is the
 * last thing that happens to the message.
 */
function nextMessage(timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.removeListener('message', on);
      reject(new Error('the SDK received no message'));
    }, timeoutMs);
    function on(msg) {
      clearTimeout(timer);
      client.removeListener('message', on);
      resolve(msg);
    }
    client.on('message', on);
  });
}

async function send(body, extra = {}) {
  const res = await api('POST', '/cloud-messages', { body, ...extra });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  assert.equal(res.body.state, 'queued');
  return res.body;
}

test('the SDK receives a message and completes it', { timeout: 60_000 }, async () => {
  const sent = await send('hello sdk', { properties: { color: 'blue' }, messageId: 'sdk-1', correlationId: 'corr-1' });
  const msg = await nextMessage();
  assert.equal(msg.data.toString(), 'hello sdk');
  assert.equal(msg.messageId, 'sdk-1');
  assert.equal(msg.correlationId, 'corr-1');
  assert.equal(msg.properties.getValue('iothub-app-color'), 'blue');
  assert.ok(msg.lockToken, 'the ETag became the lock token');
  assert.equal((await stateOf(sent.id)).state, 'locked');
  await client.complete(msg);
  const done = await waitForState(sent.id, 'completed');
  assert.equal(done.deliveryCount, 1);
});

test('the SDK rejects a message', { timeout: 60_000 }, async () => {
  const sent = await send('reject me');
  const msg = await nextMessage();
  assert.equal(msg.data.toString(), 'reject me');
  await client.reject(msg);
  await waitForState(sent.id, 'rejected');
});

test('the SDK abandons a message, which is delivered again', { timeout: 60_000 }, async () => {
  const sent = await send('abandon me');
  const first = await nextMessage();
  await client.abandon(first);
  const abandoned = await waitForState(sent.id, 'abandoned');
  assert.equal(abandoned.deliveryCount, 1);
  const second = await nextMessage();
  assert.equal(second.data.toString(), 'abandon me');
  assert.notEqual(second.lockToken, first.lockToken);
  await client.complete(second);
  const done = await waitForState(sent.id, 'completed');
  assert.equal(done.deliveryCount, 2);
});

test('settling with a spent lock fails with 412 Precondition Failed', { timeout: 60_000 }, async () => {
  await send('twice');
  const msg = await nextMessage();
  await client.complete(msg);
  await assert.rejects(client.complete(msg), /Precondition Failed/);
});


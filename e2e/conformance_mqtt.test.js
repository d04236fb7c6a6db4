// Conformance: the unmodified Azure IoT device SDK for Node over MQTT
// (azure-iot-device + azure-iot-device-mqtt, pinned in package.json) against
// the real binary over TLS, checked through the operator API.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import deviceSdk from 'azure-iot-device';
import mqttTransport from 'azure-iot-device-mqtt';
import { cli, freePort, startHub } from './harness.js';

const { Client, Message } = deviceSdk; // CommonJS packages
const { Mqtt, MqttWs } = mqttTransport;

let hub;
let mqttPort;
let token;
let ca;

before(async () => {
  mqttPort = await freePort();
  const devicePort = await freePort();
  hub = await startHub({ args: ['--mqtt-addr', `127.0.0.1:${mqttPort}`, '--device-addr', `127.0.0.1:${devicePort}`] });
  token = (await cli(hub.dataDir, 'token', 'create', '--role', 'admin', '--name', 'conformance')).trim();
  ca = readFileSync(path.join(hub.dataDir, 'tls', 'ca.pem'), 'utf8');
});

after(async () => {
  await hub?.stop();
});

/** Calls the operator API and returns the status and the decoded JSON body. */
async function api(method, p, body, on = { hub, token }) {
  const res = await fetch(`${on.hub.url}/api/v1${p}`, {
    method,
    headers: { Authorization: `Bearer ${on.token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Polls fn until it returns a truthy value. */
async function eventually(what, fn, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Registers a device and opens an SDK client to it over MQTT with the
 * connection string exactly as `fieldhub device add` prints it: its HostName
 * carries the MQTT port, which the SDK honours. (MqttWs always dials 443.)
 */
async function connectDevice(id, options = {}, transport = Mqtt, on = hub) {
  const connectionString = (await cli(on.dataDir, 'device', 'add', id)).trim().split('\n').pop();
  if (on === hub && transport === Mqtt) {
    assert.match(connectionString, new RegExp(`^HostName=localhost:${mqttPort};DeviceId=`));
  }
  const key = connectionString.match(/SharedAccessKey=([^;]+)/)[1];
  const client = transport === MqttWs
    ? Client.fromConnectionString(`HostName=localhost;DeviceId=${id};SharedAccessKey=${key}`, transport)
    : Client.fromConnectionString(connectionString, transport);
  await client.setOptions({ ca: on === hub ? ca : readFileSync(path.join(on.dataDir, 'tls', 'ca.pem'), 'utf8'), ...options });
  await client.open();
  return client;
}

test('telemetry with custom properties and content type is stored', async (t) => {
  const client = await connectDevice('mqtt-telemetry');
  t.after(() => client.close());
  const msg = new Message(JSON.stringify({ temperature: 21.5, humidity: 40 }));
  msg.messageId = 'msg-1';
  msg.correlationId = 'corr-1';
  msg.contentType = 'application/json';
  msg.contentEncoding = 'utf-8';
  msg.properties.add('site', 'north/2');
  msg.properties.add('alert level', 'high & rising');
  await client.sendEvent(msg); // resolves on PUBACK, which the hub sends after commit

  const res = await api('GET', '/devices/mqtt-telemetry/messages?limit=1');
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const list = Array.isArray(res.body) ? res.body : res.body.messages;
  assert.equal(list.length, 1, 'stored before the PUBACK');
  const got = list[0];
  assert.equal(got.messageId, 'msg-1');
  assert.equal(got.correlationId, 'corr-1');
  assert.equal(got.contentType, 'application/json');
  assert.deepEqual(got.properties, { site: 'north/2', 'alert level': 'high & rising' });
  assert.equal(got.authMethod, 'sas-primary');
});

test('a cloud-to-device message is received and completed', async (t) => {
  const client = await connectDevice('mqtt-c2d');
  t.after(() => client.close());
  const received = new Promise((resolve) => client.on('message', (m) => resolve(m)));
  // Receiving starts when a 'message' listener is attached: wait for the subscription.
  await new Promise((r) => setTimeout(r, 500));
  const sent = await api('POST', '/devices/mqtt-c2d/cloud-messages', {
    body: 'open the valve',
    properties: { valve: 'v/7', urgency: 'high' },
    correlationId: 'job-42',
  });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  const m = await received;
  assert.equal(m.data.toString(), 'open the valve');
  assert.equal(m.correlationId, 'job-42');
  assert.equal(m.messageId, sent.body.messageId);
  const props = Object.fromEntries(m.properties.propertyList.map((p) => [p.key, p.value]));
  assert.deepEqual(props, { valve: 'v/7', urgency: 'high' });
  await client.complete(m);
  await eventually('message completed', async () => {
    const list = await api('GET', '/devices/mqtt-c2d/cloud-messages');
    return list.body.messages.find((x) => x.id === sent.body.id)?.state === 'completed';
  });
});

test('a direct method is answered and the answer reaches the operator API', async (t) => {
  const client = await connectDevice('mqtt-method');
  t.after(() => client.close());
  client.onDeviceMethod('reboot', (request, response) => {
    response.send(200, { rebooted: true, delay: request.payload.delay }, () => {});
  });
  // The SDK subscribes to methods on its own time: the hub waits for that
  // as for a connection (connectTimeoutInSeconds), instead of the test
  // guessing how long it takes.
  const res = await api('POST', '/devices/mqtt-method/methods/reboot', {
    payload: { delay: 3 },
    responseTimeoutInSeconds: 10,
    connectTimeoutInSeconds: 20,
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body, { status: 200, payload: { rebooted: true, delay: 3 } });
});

test('twin: get, reported patch visible in the API, desired patch received', async (t) => {
  const client = await connectDevice('mqtt-twin');
  t.after(() => client.close());
  await api('PATCH', '/devices/mqtt-twin/twin', { rate: 5 });
  const twin = await client.getTwin();
  assert.equal(twin.properties.desired.rate, 5);
  assert.equal(typeof twin.properties.reported.$version, 'number');

  // update() takes a callback and returns nothing; it calls back on the 204.
  await new Promise((resolve, reject) => {
    twin.properties.reported.update({ firmware: '1.2.3', battery: { level: 80 } }, (err) => (err ? reject(err) : resolve()));
  });
  const shown = await api('GET', '/devices/mqtt-twin/twin');
  assert.equal(shown.body.properties.reported.firmware, '1.2.3');
  assert.deepEqual(shown.body.properties.reported.battery, { level: 80 });

  // Desired patches go only to a device subscribed to them, and the SDK
  // subscribes when a listener is added without saying when it is done:
  // subscribe first and wait for the SUBACK.
  await new Promise((resolve, reject) => twin.enableTwinDesiredPropertiesUpdates((err) => (err ? reject(err) : resolve())));
  const desired = new Promise((resolve) => {
    twin.on('properties.desired', (delta) => {
      if (delta.rate === 10) resolve(delta);
    });
  });
  const patched = await api('PATCH', '/devices/mqtt-twin/twin', { rate: 10 });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  const delta = await desired;
  assert.equal(delta.$version, patched.body.properties.desired.$version);
});

test('after token renewals, cloud-to-device messages and methods still work', async (t) => {
  // Tokens valid 6 s, renewed 3 s before expiry: the SDK reconnects with a
  // new token every 3 s without subscribing again.
  const client = await connectDevice('mqtt-renew', { tokenRenewal: { tokenValidTimeInSeconds: 6, tokenRenewalMarginInSeconds: 3 } });
  t.after(() => client.close());
  const messages = [];
  client.on('message', (m) => {
    messages.push(m.data.toString());
    client.complete(m, () => {});
  });
  client.onDeviceMethod('ping', (request, response) => response.send(200, { pong: request.payload }, () => {}));
  // At least two renewals. The hub logs every connection (the audit log
  // keeps one pair a minute).
  const connects = () => hub.logs().match(/msg="device connected"[^\n]* device=mqtt-renew /g) ?? [];
  await eventually('3 connections (two renewals)', () => connects().length >= 3, 60_000);
  const sent = await api('POST', '/devices/mqtt-renew/cloud-messages', { body: 'after renewal' });
  assert.equal(sent.status, 201);
  await eventually('message after renewal', () => messages.includes('after renewal'));
  const res = await api('POST', '/devices/mqtt-renew/methods/ping', { payload: 'x', responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 5 });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body.payload, { pong: 'x' });
});

test('MQTT over WebSockets (MqttWs): telemetry and a direct method', { timeout: 120_000 }, async (t) => {
  // The SDK's MqttWs transport always dials wss://<HostName>:443/$iothub/websocket,
  // so this hub's device listener takes port 443, waiting while another test holds it.
  let wsHub;
  for (const deadline = Date.now() + 60_000; !wsHub; ) {
    try {
      wsHub = await startHub({ args: ['--mqtt-addr', `127.0.0.1:${await freePort()}`, '--device-addr', '127.0.0.1:443'] });
    } catch (err) {
      if (!/address already in use/.test(err.message) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  let client;
  // Close the device before its hub: a client whose hub vanished keeps
  // reconnecting and holds the test process open.
  t.after(async () => {
    await client?.close();
    await wsHub.stop();
  });
  const on = { hub: wsHub, token: (await cli(wsHub.dataDir, 'token', 'create', '--role', 'admin', '--name', 'ws')).trim() };
  client = await connectDevice('mqtt-ws', {}, MqttWs, wsHub);
  const msg = new Message(JSON.stringify({ temperature: 19 }));
  msg.contentType = 'application/json';
  msg.properties.add('via', 'websocket');
  await client.sendEvent(msg);
  const res = await api('GET', '/devices/mqtt-ws/messages?limit=1', undefined, on);
  assert.deepEqual(res.body.messages[0].properties, { via: 'websocket' });

  client.onDeviceMethod('ping', (request, response) => response.send(200, { pong: true }, () => {}));
  const call = await api(
    'POST',
    '/devices/mqtt-ws/methods/ping',
    { payload: {}, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 20 },
    on,
  );
  assert.equal(call.status, 200, JSON.stringify(call.body));
  assert.deepEqual(call.body.payload, { pong: true });
});

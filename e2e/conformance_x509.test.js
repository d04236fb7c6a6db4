// Conformance: X.509 device authentication with the unmodified Azure IoT
// device SDK for Node (connection string `…;x509=true` plus
// setOptions({cert, key})), over MQTT and HTTPS, against the real binary;
// and with curl --cert. Self-signed devices are registered by thumbprint,
// CA-signed ones through a CA certificate uploaded to the hub; certificates
// the hub does not know are refused, and removing a CA disconnects its devices.
//
// As in conformance_http.test.js, the SDK's HTTP transport always dials port
// 443, so the device listener runs on 127.0.0.4:443 (a loopback address of
// its own) and --hostname puts that address into the server certificate.
// Certificates are made with the openssl command line.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import deviceSdk from 'azure-iot-device';
import deviceHttp from 'azure-iot-device-http';
import deviceMqtt from 'azure-iot-device-mqtt';
import { cli, freePort, startHub, tempDir } from './harness.js';

const run = promisify(execFile);
const { Client, Message } = deviceSdk;
const { Http } = deviceHttp;
const { Mqtt } = deviceMqtt;
const host = '127.0.0.4';

let hub;
let mqttPort;
let hubCA;
let adminToken;
let certDir;
const certs = {};

/** Runs openssl in certDir. */
function openssl(...args) {
  return run('openssl', args, { cwd: certDir });
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A self-signed device certificate with subject CN cn. */
async function selfSigned(name, cn) {
  await openssl('req', '-x509', ...ecKey, '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:FALSE');
  return load(name);
}

/** A root CA certificate. */
async function rootCA(name, cn) {
  await openssl('req', '-x509', ...ecKey, '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  return load(name);
}

/** A device certificate with subject CN cn issued by the CA named ca. */
async function issued(name, cn, ca) {
  await openssl('req', '-new', ...ecKey, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  writeFileSync(path.join(certDir, `${name}.ext`), 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n');
  await openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-CAcreateserial',
    '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  return load(name);
}

function load(name) {
  const cert = readFileSync(path.join(certDir, `${name}.pem`), 'utf8');
  return {
    cert,
    key: readFileSync(path.join(certDir, `${name}-key.pem`), 'utf8'),
    certFile: path.join(certDir, `${name}.pem`),
    keyFile: path.join(certDir, `${name}-key.pem`),
    // "AB:CD:…", as openssl and most tools print it; the hub takes that form.
    thumbprint: new X509Certificate(cert).fingerprint256,
  };
}

before(async () => {
  certDir = tempDir('fieldhub-x509-');
  certs.self = await selfSigned('self', 'x509-self');
  certs.selfSecondary = await selfSigned('self2', 'x509-self');
  certs.stranger = await selfSigned('stranger', 'x509-self');
  certs.root = await rootCA('root', 'Fleet Root');
  certs.caDevice = await issued('ca-device', 'x509-ca', 'root');
  certs.revoked = await issued('revoked-device', 'x509-revoked', 'root');
  certs.foreignRoot = await rootCA('foreign', 'Foreign Root');
  certs.foreignDevice = await issued('foreign-device', 'x509-ca', 'foreign');

  mqttPort = await freePort();
  hub = await startHub({ args: ['--device-addr', `${host}:443`, '--mqtt-addr', `${host}:${mqttPort}`, '--hostname', host] });
  hubCA = readFileSync(path.join(hub.dataDir, 'tls', 'ca.pem'), 'utf8');
  adminToken = (await cli(hub.dataDir, 'token', 'create', '--role', 'admin', '--name', 'conformance-x509')).trim();

  const cs = (await cli(hub.dataDir, 'device', 'add', 'x509-self', '--x509-thumbprint', certs.self.thumbprint,
    '--x509-thumbprint', certs.selfSecondary.thumbprint.toLowerCase())).trim();
  assert.equal(cs, `HostName=${host}:${mqttPort};DeviceId=x509-self;x509=true`);
  await cli(hub.dataDir, 'ca', 'add', 'fleet', certs.root.certFile);
  await cli(hub.dataDir, 'device', 'add', 'x509-ca', '--x509-ca');
  await cli(hub.dataDir, 'device', 'add', 'x509-revoked', '--x509-ca');
  await cli(hub.dataDir, 'device', 'add', 'sas-dev');
});

after(async () => {
  await hub?.stop();
});

async function api(method, p, body) {
  const res = await fetch(`${hub.url}/api/v1${p}`, {
    method,
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The newest stored message of a device. */
async function lastMessage(id) {
  const { status, body } = await api('GET', `/devices/${id}/messages?limit=1`);
  assert.equal(status, 200);
  return body.messages[0];
}

/** An SDK client for an X.509 device: the connection string plus setOptions({cert, key}). */
async function x509Client(id, transport, cert) {
  const hostName = transport === Mqtt ? `${host}:${mqttPort}` : host;
  const client = Client.fromConnectionString(`HostName=${hostName};DeviceId=${id};x509=true`, transport);
  const options = { cert: cert.cert, key: cert.key, ca: hubCA };
  // The HTTP transport answers setOptions only when receiver settings come along.
  if (transport === Http) options.http = { receivePolicy: { manualPolling: true } };
  await client.setOptions(options);
  return client;
}

async function sendFrom(client, id, value) {
  const m = new Message(JSON.stringify({ value }));
  m.messageId = `${id}-${value}`;
  await client.sendEvent(m);
}

for (const [name, transport] of [['MQTT', Mqtt], ['HTTPS', Http]]) {
  test(`${name}: a self-signed device sends with its primary and its secondary certificate`, async () => {
    for (const [cert, method] of [[certs.self, 'x509-primary'], [certs.selfSecondary, 'x509-secondary']]) {
      const client = await x509Client('x509-self', transport, cert);
      await client.open();
      await sendFrom(client, 'x509-self', `${name}-${method}`);
      await client.close();
      const got = await lastMessage('x509-self');
      assert.equal(got.messageId, `x509-self-${name}-${method}`);
      assert.equal(got.authMethod, method);
    }
  });

  test(`${name}: a CA-signed device sends`, async () => {
    const client = await x509Client('x509-ca', transport, certs.caDevice);
    await client.open();
    await sendFrom(client, 'x509-ca', name);
    await client.close();
    const got = await lastMessage('x509-ca');
    assert.equal(got.messageId, `x509-ca-${name}`);
    assert.equal(got.authMethod, 'x509-ca');
  });

  test(`${name}: unknown certificates are refused as unauthorized`, async () => {
    for (const [id, cert] of [['x509-self', certs.stranger], ['x509-ca', certs.foreignDevice], ['sas-dev', certs.self]]) {
      const client = await x509Client(id, transport, cert);
      // MQTT refuses the CONNECT (CONNACK 5); HTTPS answers the request with 401.
      const attempt = transport === Mqtt ? client.open() : client.open().then(() => sendFrom(client, id, 'refused'));
      await assert.rejects(attempt, (err) => {
        assert.match(`${err.name} ${err.message}`, /Unauthorized|Not authorized|401/, `${id}: ${err.name} ${err.message}`);
        return true;
      });
      await client.close().catch(() => {});
    }
  });
}

test('curl --cert: a device certificate is all curl needs; a stranger gets a bare 401', async (t) => {
  try {
    await run('curl', ['--version']);
  } catch {
    t.skip('curl is not installed; the SDK tests above cover HTTPS with client certificates');
    return;
  }
  const caFile = path.join(hub.dataDir, 'tls', 'ca.pem');
  const curl = (cert) =>
    run('curl', ['-sS', '--cacert', caFile, '--cert', cert.certFile, '--key', cert.keyFile, '-w', '\n%{http_code}',
      '-H', 'iothub-messageid: from-curl', '-d', '{"value":1}', `https://${host}/devices/x509-self/messages/events`]);
  const ok = await curl(certs.self);
  assert.equal(ok.stdout.trim(), '204');
  const got = await lastMessage('x509-self');
  assert.equal(got.messageId, 'from-curl');
  assert.equal(got.authMethod, 'x509-primary');

  const refused = await curl(certs.stranger);
  assert.deepEqual(refused.stdout.split('\n').filter(Boolean), ['{"error":"unauthorized"}', '401']);
});

test('removing the CA disconnects its devices and refuses them afterwards', async () => {
  // A device of its own: the device log keeps the first disconnect of each
  // minute, and x509-ca has disconnected in the tests above.
  const client = await x509Client('x509-revoked', Mqtt, certs.revoked);
  await client.open();
  const { status } = await api('DELETE', '/cas/fleet');
  assert.equal(status, 204);
  // The SDK reconnects by itself after the hub closes its connection, and is
  // refused; the hub records why it closed the connection.
  await eventually('the disconnect recorded', async () => {
    const { body } = await api('GET', '/audit?target=x509-revoked&action=device.disconnected');
    return body.entries.some((e) => e.detail === 'CA certificate removed');
  });
  await client.close().catch(() => {});

  const again = await x509Client('x509-ca', Mqtt, certs.caDevice);
  await assert.rejects(again.open(), /Not authorized|Unauthorized/);
  await again.close().catch(() => {});
});

/** Polls fn until it returns a truthy value. */
async function eventually(what, fn, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

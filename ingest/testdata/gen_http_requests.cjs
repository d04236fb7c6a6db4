// Captures what azure-iot-device-http 1.14.4 sends for sendEvent and sendEventBatch,
// without a network: the transport's request builder is replaced by a recorder.
// Run: cd /tmp/sasvec && npm i azure-iot-device-http@1.14.4 &&
//   NODE_PATH=$PWD/node_modules node /path/to/ingest/testdata/gen_http_requests.cjs > /path/to/ingest/testdata/http_requests.json
const { Http } = require('azure-iot-device-http');
const { Message } = require('azure-iot-common');
const auth = { getDeviceCredentials: (cb) => cb(null, { host: 'localhost', deviceId: 'dev1', sharedAccessSignature: 'SharedAccessSignature sr=x&sig=y&se=1' }), on: () => {}, type: 0 };
const t = new Http(auth);
t._userAgentString = 'test';
const requests = {};
function record(name) {
  t._http = { buildRequest: (method, path, headers) => {
    let body = Buffer.alloc(0);
    return { write: (b) => { body = Buffer.concat([body, Buffer.from(b)]); }, end: () => { requests[name] = { method, path, headers, bodyBase64: body.toString('base64') }; } };
  } };
}
const m1 = new Message(JSON.stringify({ temp: 21.5, hum: 40, ts: '2024-05-01T10:00:00Z' }));
m1.properties.add('alert', 'high'); m1.properties.add('Sensor-Kind', 'dht22');
m1.messageId = 'mid-1'; // not carried in batches by this SDK
const m2 = new Message(Buffer.from([0, 1, 2, 255]));
const m3 = new Message('');
m3.properties.add('dt-subject', 'thermostat1');
record('batch');
t.sendEventBatch([m1, m2, m3], () => {});
const single = new Message(JSON.stringify({ temp: 21.5 }));
single.messageId = 'mid-7'; single.correlationId = 'cid-7'; single.userId = 'user-7';
single.contentType = 'application/json'; single.contentEncoding = 'utf-8';
single.properties.add('alert', 'high'); single.properties.add('Sensor-Kind', 'dht22');
record('single');
t.sendEvent(single, () => {});
setTimeout(() => process.stdout.write(JSON.stringify(requests, null, 2) + '\n'), 100);

// Generates SAS test vectors with the Azure IoT device SDK's own algorithm.
// Regenerate (keys are random, so every vector changes):
//   cd /tmp && mkdir sasvec && cd sasvec && npm init -y && npm i azure-iot-common@1.13.3 azure-iot-device@1.18.4
//   NODE_PATH=$PWD/node_modules node /path/to/auth/testdata/gen_sas_vectors.cjs > /path/to/auth/testdata/sas_vectors.json
const crypto = require('crypto');
const devSas = require('azure-iot-device/dist/shared_access_signature');
const { SharedAccessSignature } = require('azure-iot-common');
const keys = [crypto.randomBytes(32).toString('base64'), crypto.randomBytes(32).toString('base64')];
const cases = [
  ['localhost:8443', 'dev1', 0, 1893456000],
  ['localhost:8883', "dev'(1)*!", 1, 1893456000],
  ['127.0.0.1:8883', 'a-b.c:d+e%f_g#h*i?j!k(l)m,n=o@p$q\'r', 0, 1700000000],
  ['hub.example.com', 'sensor 7', 1, 2000000000],
  ['Fieldhub.Local', 'DEV_upper', 0, 1893459600],
];
const vectors = cases.map(([host, deviceId, keyIndex, expiry]) => ({
  host, deviceId, keyIndex, expiry,
  resource: host + '/devices/' + deviceId,
  token: devSas.create(host, deviceId, keys[keyIndex], expiry).toString(),
}));
// One policy-style token (skn) straight from azure-iot-common, to check skn parsing.
const policy = {
  host: 'localhost:8443', deviceId: 'dev1', keyIndex: 0, expiry: 1893456000, keyName: 'device policy(1)',
  resource: 'localhost:8443/devices/dev1',
  token: SharedAccessSignature.create(encodeURIComponent('localhost:8443/devices/dev1'), 'device policy(1)', keys[0], 1893456000).toString(),
};
const out = {
  generator: 'azure-iot-device 1.18.4 shared_access_signature.create / azure-iot-common 1.13.3 SharedAccessSignature.create (node ' + process.version + ')',
  keys, vectors, policyVector: policy,
};
process.stdout.write(JSON.stringify(out, null, 2) + '\n');

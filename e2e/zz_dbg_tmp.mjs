import { readFileSync } from 'node:fs';
import path from 'node:path';
import deviceSdk from 'azure-iot-device';
import deviceHttp from 'azure-iot-device-http';
import { cli, startHub } from './harness.js';
const host = '127.0.0.2';
const hub = await startHub({ args: ['--device-addr', `${host}:443`, '--hostname', host, '--mqtt-addr', '127.0.0.1:0'] });
console.log('started');
try {
  const cs = await cli(hub.dataDir, 'device', 'add', 'c2d-sdk');
  console.log('cs', cs);
  const key = cs.match(/SharedAccessKey=(\S+)/)[1];
  const tok = (await cli(hub.dataDir, 'token', 'create', '--role', 'operator', '--name', 'conformance')).trim();
  console.log('tok', tok);
  const client = deviceSdk.Client.fromConnectionString(`HostName=${host};DeviceId=c2d-sdk;SharedAccessKey=${key}`, deviceHttp.Http);
  console.log('setOptions');
  await client.setOptions({ ca: readFileSync(path.join(hub.dataDir, 'tls', 'ca.pem'), 'utf8') });
  console.log('open');
  await client.open();
  console.log('opened');
  await client.close();
} finally {
  console.log(hub.logs().slice(-2000));
  await hub.stop();
}

// A back-end app as it would be written for Azure IoT Hub, on the unmodified
// service SDK (azure-iothub): it reads its connection string from
// IOTHUB_CONNECTION_STRING and trusts the hub's certificate through
// NODE_EXTRA_CA_CERTS, as any Node app does (the SDK makes its own HTTPS
// agent, so nothing else would reach it). e2e/serviceapi.test.js runs one
// step per process: node e2e/apps/iothub-backend.mjs <step>. A step exits 0
// when everything it checked held, and prints what the test checks further
// as JSON on its last line.
import assert from 'node:assert/strict';
import serviceSdk from 'azure-iothub';

const { Registry, Client, JobClient } = serviceSdk; // CommonJS package
const cs = process.env.IOTHUB_CONNECTION_STRING;

/** Polls fn until it returns a truthy value. */
async function eventually(what, fn, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const steps = {
  // Registry: create, get, update, list and delete.
  async registry() {
    const registry = Registry.fromConnectionString(cs);
    const { responseBody: created } = await registry.create({ deviceId: 'svc-1' });
    assert.equal(created.deviceId, 'svc-1');
    assert.equal(created.status, 'enabled');
    assert.equal(created.authentication.type, 'sas');
    assert.match(created.authentication.symmetricKey.primaryKey, /^[A-Za-z0-9+/]{43}=$/);
    await assert.rejects(registry.create({ deviceId: 'svc-1' }), (err) => err.name === 'DeviceAlreadyExistsError');

    const { responseBody: got } = await registry.get('svc-1');
    assert.equal(got.etag, created.etag);
    assert.equal(got.generationId, created.generationId);

    got.status = 'disabled';
    const { responseBody: updated } = await registry.update(got);
    assert.equal(updated.status, 'disabled');
    assert.notEqual(updated.etag, created.etag);
    assert.equal(updated.authentication.symmetricKey.primaryKey, created.authentication.symmetricKey.primaryKey);

    const { responseBody: list } = await registry.list();
    const ids = list.map((d) => d.deviceId);
    assert.ok(ids.includes('svc-1') && ids.includes('svc-dev'), `list: ${ids}`);

    await registry.delete('svc-1');
    await assert.rejects(registry.get('svc-1'), (err) => err.name === 'DeviceNotFoundError');
    return { generationId: created.generationId };
  },

  // Twins: getTwin, updateTwin with its etag, Twin.update, createQuery page by page.
  async twins() {
    const registry = Registry.fromConnectionString(cs);
    for (const id of ['svc-q1', 'svc-q2', 'svc-q3']) await registry.create({ deviceId: id });
    for (const id of ['svc-q1', 'svc-q3']) {
      const { responseBody: twin } = await registry.getTwin(id);
      assert.equal(twin.deviceId, id);
      assert.equal(twin.properties.desired.$version, 1);
      const { responseBody: patched } = await registry.updateTwin(id, { tags: { site: 'north' }, properties: { desired: { rate: 5 } } }, twin.etag);
      assert.equal(patched.tags.site, 'north');
      assert.equal(patched.properties.desired.rate, 5);
      assert.notEqual(patched.etag, twin.etag);
      await assert.rejects(registry.updateTwin(id, { tags: { site: 'south' } }, twin.etag), (err) => err.name === 'InvalidEtagError');
    }
    const { responseBody: twin2 } = await registry.getTwin('svc-q2');
    await twin2.update({ tags: { site: 'south' } });
    assert.equal((await registry.getTwin('svc-q2')).responseBody.tags.site, 'south');

    const query = registry.createQuery("SELECT * FROM devices WHERE tags.site = 'north'", 1);
    const ids = [];
    let pages = 0;
    do {
      const { result } = await query.nextAsTwin();
      pages++;
      assert.ok(result.length <= 1, 'pages of one');
      for (const t of result) ids.push(t.deviceId);
    } while (query.hasMoreResults && pages < 10);
    assert.deepEqual(ids, ['svc-q1', 'svc-q3']);
    return { pages };
  },

  // Direct methods through the service client, on the device SDK's device.
  async method() {
    const client = Client.fromConnectionString(cs);
    const { result } = await client.invokeDeviceMethod('svc-dev', { methodName: 'reboot', payload: { delay: 2 }, responseTimeoutInSeconds: 15 });
    assert.deepEqual(result, { status: 200, payload: { rebooted: true, got: { delay: 2 } } });
    await assert.rejects(
      client.invokeDeviceMethod('svc-q1', { methodName: 'reboot', payload: null, responseTimeoutInSeconds: 5 }),
      // IoT Hub's 404 DeviceNotOnline, which the SDK passes on as 'Not found'.
      (err) => err.message === 'Not found' && /ErrorCode:DeviceNotOnline;/.test(err.responseBody),
    );
    return result;
  },

  // Jobs: a method and a twin update on the devices a query selects, polled to completion.
  async jobs() {
    const jobs = JobClient.fromConnectionString(cs);
    await jobs.scheduleDeviceMethod('svc-job-method', "deviceId IN ['svc-dev']", { methodName: 'reboot', payload: { n: 1 }, responseTimeoutInSeconds: 10 });
    const method = await eventually('the method job to complete', async () => {
      const { jobStatus } = await jobs.getJob('svc-job-method');
      assert.notEqual(jobStatus.status, 'failed', JSON.stringify(jobStatus));
      return jobStatus.status === 'completed' && jobStatus;
    });
    assert.equal(method.type, 'scheduleDeviceMethod');
    assert.equal(method.deviceJobStatistics.deviceCount, 1);
    assert.equal(method.deviceJobStatistics.succeededCount, 1);

    await jobs.scheduleTwinUpdate('svc-job-twin', "tags.site = 'north'", { etag: '*', properties: { desired: { firmware: '2.1' } } });
    const twin = await eventually('the twin job to complete', async () => {
      const { jobStatus } = await jobs.getJob('svc-job-twin');
      return jobStatus.status === 'completed' && jobStatus;
    });
    assert.equal(twin.type, 'scheduleUpdateTwin');
    assert.equal(twin.deviceJobStatistics.succeededCount, 2);
    const registry = Registry.fromConnectionString(cs);
    for (const id of ['svc-q1', 'svc-q3']) {
      assert.equal((await registry.getTwin(id)).responseBody.properties.desired.firmware, '2.1');
    }
    assert.equal((await registry.getTwin('svc-q2')).responseBody.properties.desired.firmware, undefined);

    const listed = [];
    const q = jobs.createQuery('scheduleUpdateTwin', 'completed');
    const { result } = await q.next();
    for (const j of result) listed.push(j.jobId);
    assert.deepEqual(listed, ['svc-job-twin']);
    return { method: method.deviceJobStatistics, twin: twin.deviceJobStatistics };
  },
};

const step = steps[process.argv[2]];
if (!step) {
  console.error(`usage: iothub-backend.mjs ${Object.keys(steps).join('|')}`);
  process.exit(2);
}
try {
  console.log(JSON.stringify(await step()));
  // The SDK's keep-alive agent would hold the process open until the hub
  // closes the idle connections.
  process.exit(0);
} catch (err) {
  console.error(err.stack ?? err);
  if (err.responseBody) console.error('response body:', err.responseBody);
  process.exit(1);
}

/**
 * The metrics endpoint's setting (TANDEM_METRICS, loopback only unless TANDEM_METRICS_ALLOW_REMOTE=1) and its HTTP
 * server (src/daemon/metrics-server.ts), on 127.0.0.1 with a port the kernel picks.
 */
import http from 'node:http';
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { metricsListenFromEnv, parseMetricsListen, startMetricsServer } from '../../../src/daemon/metrics-server.js';
import { UserError } from '../../../src/errors.js';

function userError(f: () => unknown): UserError {
  try {
    f();
  } catch (e) {
    assert.instance(e, UserError);
    return e as UserError;
  }
  throw new Error('expected a UserError');
}

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('unset or empty: off', () => {
  assert.is(metricsListenFromEnv({}), null);
  assert.is(metricsListenFromEnv({ TANDEM_METRICS: ' ' }), null);
});

test('loopback addresses are accepted, IPv4, IPv6 and localhost', () => {
  assert.equal(metricsListenFromEnv({ TANDEM_METRICS: '127.0.0.1:9464' }), { host: '127.0.0.1', port: 9464 });
  assert.equal(parseMetricsListen('127.0.0.53:1', false), { host: '127.0.0.53', port: 1 });
  assert.equal(parseMetricsListen('[::1]:9464', false), { host: '::1', port: 9464 });
  assert.equal(parseMetricsListen('localhost:9464', false), { host: '127.0.0.1', port: 9464 });
});

test('not ADDR:PORT, a bad port or a name: a UserError that says what to write', () => {
  for (const raw of ['127.0.0.1', ':9464', '127.0.0.1:', '::1:9464', '127.0.0.1:94a']) {
    const e = userError(() => parseMetricsListen(raw, false));
    assert.match(e.message, /is not ADDR:PORT/, raw);
    assert.match(e.hint ?? '', /TANDEM_METRICS=127\.0\.0\.1:9464/);
  }
  assert.match(userError(() => parseMetricsListen('127.0.0.1:0', false)).message, /port 0 is not between 1 and 65535/);
  assert.match(userError(() => parseMetricsListen('127.0.0.1:70000', false)).message, /port 70000 is not between/);
  assert.match(userError(() => parseMetricsListen('node1:9464', false)).message, /"node1" is not an IP address/);
  assert.match(userError(() => parseMetricsListen('[127.0.0.1]:9464', false)).message, /is not an IP address/);
});

test('the wildcard and a LAN address are refused without TANDEM_METRICS_ALLOW_REMOTE=1, accepted with it', () => {
  const w = userError(() => metricsListenFromEnv({ TANDEM_METRICS: '0.0.0.0:9464' }));
  assert.match(w.message, /0\.0\.0\.0 is the wildcard address \(every interface\); the metrics endpoint has no authentication/);
  assert.match(w.hint ?? '', /use 127\.0\.0\.1:9464 .*or set TANDEM_METRICS_ALLOW_REMOTE=1/);
  assert.match(userError(() => parseMetricsListen('[::]:9464', false)).message, /:: is the wildcard address/);
  assert.match(userError(() => parseMetricsListen('198.51.100.1:9464', false)).message, /198\.51\.100\.1 is not a loopback address/);
  assert.equal(metricsListenFromEnv({ TANDEM_METRICS: '198.51.100.1:9464', TANDEM_METRICS_ALLOW_REMOTE: '1' }), { host: '198.51.100.1', port: 9464 });
  assert.equal(metricsListenFromEnv({ TANDEM_METRICS: '0.0.0.0:9464', TANDEM_METRICS_ALLOW_REMOTE: '1' }), { host: '0.0.0.0', port: 9464 });
  userError(() => metricsListenFromEnv({ TANDEM_METRICS: '198.51.100.1:9464', TANDEM_METRICS_ALLOW_REMOTE: '0' }));
});

test('TANDEM_METRICS_ALLOW_REMOTE other than 1 or 0: a UserError', () => {
  const e = userError(() => metricsListenFromEnv({ TANDEM_METRICS: '127.0.0.1:9464', TANDEM_METRICS_ALLOW_REMOTE: 'yes' }));
  assert.match(e.message, /TANDEM_METRICS_ALLOW_REMOTE="yes" is neither 1 nor 0/);
});

test('GET /metrics answers the rendered text as text/plain version 0.0.4; other paths 404, POST 405, a failed render 500', async () => {
  let fail = false;
  let n = 0;
  const srv = await startMetricsServer({ host: '127.0.0.1', port: 0 }, async () => {
    if (fail) throw new Error('view broke');
    return `# HELP x y\n# TYPE x gauge\nx ${++n}\n`;
  });
  try {
    const port = srv.address.port;
    assert.ok(port > 0);
    const r = await get(port, '/metrics');
    assert.is(r.status, 200);
    assert.is(r.type, 'text/plain; version=0.0.4; charset=utf-8');
    assert.is(r.body, '# HELP x y\n# TYPE x gauge\nx 1\n');
    assert.is((await get(port, '/metrics?x=1')).body, '# HELP x y\n# TYPE x gauge\nx 2\n', 'rendered per scrape');
    const nf = await get(port, '/');
    assert.is(nf.status, 404);
    assert.match(nf.body, /on \/metrics/);
    assert.is((await get(port, '/metrics', 'POST')).status, 405);
    fail = true;
    const e = await get(port, '/metrics');
    assert.is(e.status, 500);
    assert.match(e.body, /could not render its metrics: view broke/);
  } finally {
    await srv.close();
  }
});

test('a port in use: a UserError naming the address and what to do', async () => {
  const other = net.createServer();
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  const port = (other.address() as net.AddressInfo).port;
  try {
    let err: unknown = null;
    await startMetricsServer({ host: '127.0.0.1', port }, async () => '').then((s) => s.close(), (e) => (err = e));
    assert.instance(err, UserError);
    assert.match((err as UserError).message, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: another process uses that port`));
    assert.match((err as UserError).hint ?? '', /choose another port in TANDEM_METRICS/);
  } finally {
    await new Promise<void>((r) => other.close(() => r()));
  }
});

test('an address that is not this node\'s: a UserError saying so', async () => {
  let err: unknown = null;
  // 192.0.2.0/24 (TEST-NET-1) is on no interface of a test machine
  await startMetricsServer({ host: '192.0.2.77', port: 9464 }, async () => '').then((s) => s.close(), (e) => (err = e));
  assert.instance(err, UserError);
  assert.match((err as UserError).message, /192\.0\.2\.77 is not an address of this node/);
});

test.run();

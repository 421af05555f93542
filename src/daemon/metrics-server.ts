/**
 * The daemon's opt-in Prometheus endpoint (README, "Metrics"; docs/design/metrics.md): `GET /metrics` on the address
 * of TANDEM_METRICS (`ADDR:PORT`, per node, default off). The endpoint has no authentication, so only a loopback
 * address is accepted unless TANDEM_METRICS_ALLOW_REMOTE=1 says that another address (a LAN address of this node,
 * or the wildcard) is wanted on purpose.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { UserError } from '../errors.js';

export interface MetricsListen {
  host: string;
  port: number;
}

const HINT = 'set TANDEM_METRICS to a loopback address and port, e.g. TANDEM_METRICS=127.0.0.1:9464, or unset it to turn the endpoint off';

/**
 * The endpoint's address from the daemon's environment: null when TANDEM_METRICS is unset or empty (off).
 * A UserError saying what to write when the value is not `ADDR:PORT`, or not a loopback address without
 * TANDEM_METRICS_ALLOW_REMOTE=1.
 */
export function metricsListenFromEnv(env: NodeJS.ProcessEnv): MetricsListen | null {
  const raw = env.TANDEM_METRICS?.trim();
  if (!raw) return null;
  const allow = env.TANDEM_METRICS_ALLOW_REMOTE;
  if (allow !== undefined && allow !== '' && allow !== '0' && allow !== '1') {
    throw new UserError(`TANDEM_METRICS_ALLOW_REMOTE="${allow}" is neither 1 nor 0.`, 'set TANDEM_METRICS_ALLOW_REMOTE=1 to serve metrics on a non-loopback address, or unset it');
  }
  return parseMetricsListen(raw, allow === '1');
}

export function parseMetricsListen(raw: string, allowRemote: boolean): MetricsListen {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw);
  if (!m) throw new UserError(`TANDEM_METRICS="${raw}" is not ADDR:PORT (IPv6: [ADDR]:PORT).`, HINT);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new UserError(`TANDEM_METRICS="${raw}": port ${m[3]} is not between 1 and 65535.`, HINT);
  let host = m[1] ?? m[2]!;
  if (host === 'localhost') host = '127.0.0.1';
  const family = net.isIP(host);
  if (family === 0 || (m[1] !== undefined && family !== 6)) {
    throw new UserError(`TANDEM_METRICS="${raw}": "${host}" is not an IP address.`, HINT);
  }
  if (!allowRemote && !isLoopback(host)) {
    const what = isWildcard(host) ? 'the wildcard address (every interface)' : 'not a loopback address';
    throw new UserError(
      `TANDEM_METRICS="${raw}": ${host} is ${what}; the metrics endpoint has no authentication and serves only on loopback by default.`,
      `use 127.0.0.1:${port} (a Prometheus on this node, or an ssh tunnel), or set TANDEM_METRICS_ALLOW_REMOTE=1 as well to serve on ${host} on purpose (restrict who reaches it with a firewall)`,
    );
  }
  return { host, port };
}

function isLoopback(host: string): boolean {
  if (net.isIPv4(host)) return host.startsWith('127.');
  const l = host.toLowerCase();
  return l === '::1' || l === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(l);
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || /^[0:]+$/.test(host);
}

export interface MetricsServer {
  /** where it listens (the port is the bound one: 0 in `listen` picks a free one) */
  readonly address: MetricsListen;
  close(): Promise<void>;
}

/**
 * Serves `render()` as `GET /metrics` (also HEAD); other paths 404, other methods 405. `render` must not throw for
 * a domain outcome; when it rejects the scrape gets a 500 with the message (Prometheus then marks the target down).
 * Rejects with a UserError saying what to do when the address cannot be bound (in use, not an address of this node).
 */
export async function startMetricsServer(listen: MetricsListen, render: () => Promise<string>): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '').split('?')[0];
    if (url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('tandem serves its metrics on /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('use GET /metrics\n');
      return;
    }
    render().then((body) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(req.method === 'HEAD' ? undefined : body);
    }, (e: Error) => {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`tandem could not render its metrics: ${e.message}\n`);
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      const at = listen.host.includes(':') ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
      reject(e.code === 'EADDRINUSE'
        ? new UserError(`the metrics endpoint cannot listen on ${at}: another process uses that port.`, `choose another port in TANDEM_METRICS, or find the process with \`ss -ltnp 'sport = :${listen.port}'\``)
        : e.code === 'EADDRNOTAVAIL'
          ? new UserError(`the metrics endpoint cannot listen on ${at}: ${listen.host} is not an address of this node.`, 'use 127.0.0.1:PORT, or an address `ip -br addr` shows on this node')
          : new UserError(`the metrics endpoint cannot listen on ${at}: ${e.message}.`, HINT));
    };
    server.once('error', onError);
    server.listen(listen.port, listen.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return {
    address: { host: a.address, port: a.port },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

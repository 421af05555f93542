import dgram from 'node:dgram';
import type { ClusterConfig } from '../../config/types.js';
import { deriveKey } from '../../daemon/key.js';
import { bodyJson, decode, encodeJson, frameOverhead, MAX_DATAGRAM, ReplayGuard } from '../../daemon/heartbeat-codec.js';
import { BugError, UserError } from '../../errors.js';
import type { HeartbeatMessage, HeartbeatTransport, TransportStats } from './types.js';

export interface UdpTransportOptions {
  cluster: ClusterConfig;
  /** this node's name in cluster.xml */
  self: string;
  /** LANs to open a socket on (a module's `<heart>` LANs, or every LAN) */
  lans: string[];
  /** the cluster key (32 bytes); the heartbeat sub-key is derived from it */
  key: Buffer;
  /** this daemon's start counter, persisted by the caller and incremented on every start (u32) */
  boot: number;
  log: (msg: string) => void;
  /**
   * UDP port per node name, instead of `cluster.port`, for tests that run several nodes on one address. Used both to
   * bind (self) and to send and check sources (peers). Nodes not listed use `cluster.port`.
   */
  ports?: Record<string, number>;
  /** monotonic clock for the rate limit of drop logs (ms); defaults to performance.now */
  now?: () => number;
}

/** A bound socket of a UdpTransport. */
export interface UdpBinding {
  lan: string;
  address: string;
  port: number;
}

/**
 * The real HeartbeatTransport (contract in ./types.ts).
 *
 * - One UDP socket per LAN, bound to this node's address on that LAN (never 0.0.0.0), so nodes in separate network
 *   namespaces, or on separate loopback addresses, each bind their own address at the same port.
 * - Every datagram carries (boot, seq): seq starts at 1 and increases by one per datagram sent on any LAN; and
 *   `echo`, the highest boot counter this node has authenticated from the receiver (0 before it heard from it).
 * - Receive path, in order: source address and port are those of a peer of this LAN in cluster.xml (badSource:
 *   checked before the datagram is even parsed, so a flood from any other address costs a map lookup, never an
 *   HMAC) → size, decode, HMAC (malformed / badMac) → sender is a node of this LAN other than self (unknownNode) →
 *   source address and port are the sender's on this LAN (badSource) → the LAN named inside is the socket's LAN
 *   (badSource) → the recipient named inside is this node (misdirected) → the sender's boot is remembered for
 *   `echo` → `echo` is this daemon's own boot (stale) →
 *   ReplayGuard (replay) → the body is a non-empty list (malformed) → deliver each message of it in order.
 *   `stats().received` counts delivered messages only.
 * - Packing: `send` queues the message; what was queued for one recipient on one LAN in one turn of the event loop
 *   leaves as one datagram (a JSON array of the messages, in order; more datagrams only if they exceed
 *   MAX_DATAGRAM), right after that turn (setImmediate). The daemon's one 100 ms timer makes every module send in the
 *   same turn, so a node with 64 modules sends a handful of datagrams per tick to each peer instead of one per
 *   module: one HMAC, one syscall and one replay check each. `stats().sent` counts messages, `datagrams` datagrams.
 * - Replay across restarts: the ReplayGuard lives in memory, so a restarted receiver no longer knows the last (boot,
 *   seq) it accepted. The echo closes that hole without writing anything per datagram: a heartbeat recorded before
 *   this daemon started echoes an older boot of this daemon (boots only grow, state/boot), so it is refused (stale),
 *   whatever its seq. Cost: after either daemon starts, its peer's first heartbeats (about one pulse, until each side
 *   has heard the other) are dropped as stale; they are counted, and logged only when the sender is on an older boot
 *   than already seen, or had already heard this daemon in its current boot (then it is a replay, or reordered).
 * - The first drop of each reason from each source is logged, then at most once a minute per (reason, source);
 *   all drop log lines together are capped at DropLog.MAX_LINES_PER_MINUTE, so a flood never floods the log.
 * - `onMessage` callbacks run synchronously inside the socket's receive handler: they must not block or throw.
 */
export interface UdpTransport extends HeartbeatTransport {
  bindings(): UdpBinding[];
}

export async function createUdpTransport(opts: UdpTransportOptions): Promise<UdpTransport> {
  const { cluster, self } = opts;
  const portOf = (node: string) => opts.ports?.[node] ?? cluster.port;
  const lans = [...new Set(opts.lans)].map((name) => {
    const lan = cluster.lans.find((l) => l.name === name);
    if (!lan) {
      throw new UserError(
        `heartbeat LAN "${name}" is not defined in cluster.xml (defined: ${cluster.lans.map((l) => l.name).join(', ') || 'none'}). ` +
          `Fix the LAN name in the module's <heart> or add the LAN to cluster.xml.`,
      );
    }
    const me = lan.nodes.find((n) => n.name === self);
    if (!me) {
      throw new UserError(
        `this node "${self}" is not listed in LAN "${name}" of cluster.xml. Add it with its address on that LAN, ` +
          `or check the node name this daemon runs as.`,
      );
    }
    const peers = new Map(lan.nodes.filter((n) => n.name !== self).map((n) => [n.name, n.addr]));
    return { name, addr: me.addr, peers, sources: new Set([...peers].map(([n, a]) => `${a}:${portOf(n)}`)) };
  });
  if (!Number.isInteger(opts.boot) || opts.boot < 0 || opts.boot > 0xffffffff) {
    throw new BugError(`createUdpTransport: boot ${opts.boot} is not a u32`);
  }

  const hbKey = deriveKey(opts.key, 'heartbeat');
  const guard = new ReplayGuard();
  /** per peer: the highest boot counter authenticated from it (what `echo` says when sending to it) */
  const peerBoot = new Map<string, number>();
  /** per peer: the boot of the last datagram delivered from it since this transport started */
  const accepted = new Map<string, number>();
  const stats = emptyStats();
  const now = opts.now ?? (() => performance.now());
  const drops = new DropLog(opts.log, now);
  const listeners: Array<(m: HeartbeatMessage) => void> = [];
  const sockets = new Map<string, dgram.Socket>();
  const bound: UdpBinding[] = [];
  let seq = 0n;
  let closed = false;
  /** messages queued per (LAN, recipient) for the datagram that leaves after this turn of the event loop */
  const queued = new Map<string, { lan: string; to: string; addr: string; json: string[]; bytes: number }>();
  let flushing: NodeJS.Immediate | null = null;
  /** datagrams handed to the kernel whose send has not called back yet (close waits for them) */
  let inflight = 0;
  const drained: Array<() => void> = [];

  const drop = (reason: DropReason, lan: string, source: string, detail: string) => {
    stats.dropped[reason]++;
    drops.note(reason, lan, source, detail);
  };

  for (const lan of lans) {
    const port = portOf(self);
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    try {
      await bindSocket(sock, lan.addr, port);
    } catch (e) {
      sock.close();
      for (const s of sockets.values()) s.close();
      throw bindError(lan.name, lan.addr, port, e as NodeJS.ErrnoException);
    }
    sockets.set(lan.name, sock);
    bound.push({ lan: lan.name, address: lan.addr, port });
    sock.on('error', (e) => opts.log(`heartbeat socket of LAN ${lan.name} (${lan.addr}:${port}): ${e.message}`));
    sock.on('message', (buf, rinfo) => {
      const source = `${rinfo.address}:${rinfo.port}`;
      if (!lan.sources.has(source)) return drop('badSource', lan.name, source, 'not the address and port of a node of this LAN in cluster.xml');
      if (buf.length > MAX_DATAGRAM) return drop('malformed', lan.name, source, `${buf.length}-byte datagram (max ${MAX_DATAGRAM})`);
      const d = decode(hbKey, buf);
      if (!d.ok) {
        return drop(d.reason, lan.name, source, d.reason === 'badMac'
          ? 'authentication failed (wrong cluster key, or a forged or corrupted datagram)'
          : 'not a valid tandem heartbeat');
      }
      const addr = lan.peers.get(d.from);
      if (addr === undefined) {
        return drop('unknownNode', lan.name, source, d.from === self
          ? 'claims to come from this node itself'
          : `claims to come from "${d.from}", which is not a node of this LAN in cluster.xml`);
      }
      const port = portOf(d.from);
      if (rinfo.address !== addr || rinfo.port !== port) {
        return drop('badSource', lan.name, source, `claims to come from ${d.from}, whose address on this LAN is ${addr}:${port}`);
      }
      if (d.lan !== lan.name) {
        return drop('badSource', lan.name, source, `from ${d.from} was sent for LAN ${d.lan}`);
      }
      if (d.to !== self) {
        return drop('misdirected', lan.name, source, `from ${d.from} was sent to ${d.to}, not to this node (${self}): a replay, or a sender whose cluster.xml differs`);
      }
      const known = peerBoot.get(d.from) ?? -1;
      if (d.boot > known) peerBoot.set(d.from, d.boot);
      if (d.echo !== opts.boot) {
        stats.dropped.stale++;
        // normal after either daemon starts (the sender has not heard this one yet); worth a line when the sender
        // is on an older boot than already seen, or had already heard this daemon in this boot
        if (d.boot < known || accepted.get(d.from) === d.boot) {
          drops.note('stale', lan.name, source, `from ${d.from} (boot ${d.boot}) echoes boot ${d.echo} of this daemon, whose boot is ${opts.boot}: ` +
            'a heartbeat recorded earlier (a replay), or one reordered behind newer ones');
        }
        return;
      }
      if (!guard.accept(d.from, lan.name, d.boot, d.seq)) {
        const last = guard.lastAccepted(d.from, lan.name);
        return drop('replay', lan.name, source, `from ${d.from} is not newer than the last one accepted ` +
          `(boot ${d.boot} seq ${d.seq} ≤ boot ${last?.boot} seq ${last?.seq})` +
          (last && d.boot < last.boot ? `; if ${d.from} lost its state, restart this daemon` : ''));
      }
      if (!Array.isArray(d.body) || d.body.length === 0) {
        return drop('malformed', lan.name, source, `from ${d.from} does not carry a list of messages (another tandem version?)`);
      }
      accepted.set(d.from, d.boot);
      stats.datagrams.received++;
      for (const body of d.body as unknown[]) {
        stats.received++;
        const m: HeartbeatMessage = { lan: lan.name, from: d.from, body };
        for (const cb of listeners) cb(m);
      }
    });
  }

  /** One datagram to `to` on `lan` carrying `json` (message texts). */
  const transmit = (lanName: string, to: string, addr: string, json: string[]) => {
    const sock = sockets.get(lanName)!;
    seq++;
    const buf = encodeJson(hbKey, { from: self, to, boot: opts.boot, seq, echo: peerBoot.get(to) ?? 0, lan: lanName }, `[${json.join(',')}]`);
    stats.datagrams.sent++;
    inflight++;
    sock.send(buf, portOf(to), addr, (err) => {
      if (--inflight === 0) for (const r of drained.splice(0)) r();
      if (!err) return;
      stats.sendErrors++;
      drops.noteSendError(lanName, `${addr}:${portOf(to)}`, err.message);
    });
  };

  const flush = () => {
    flushing = null;
    if (closed) return;
    const batches = [...queued.values()];
    queued.clear();
    for (const b of batches) transmit(b.lan, b.to, b.addr, b.json);
  };

  return {
    send(lanName, to, body) {
      if (closed) return;
      const lan = lans.find((l) => l.name === lanName);
      const sock = sockets.get(lanName);
      if (!lan || !sock) throw new BugError(`heartbeat send on LAN "${lanName}", which this transport did not open`);
      const addr = lan.peers.get(to);
      if (addr === undefined) throw new BugError(`heartbeat send to "${to}", which is not a peer on LAN "${lanName}"`);
      const json = bodyJson(body);
      // the room a datagram leaves for its list: the frame, the brackets and one comma per message
      const room = MAX_DATAGRAM - frameOverhead(self, to, lanName) - 2;
      const bytes = Buffer.byteLength(json);
      if (bytes > room) throw new BugError(`heartbeat send: a ${bytes}-byte message exceeds the ${room} bytes a datagram to ${to} on LAN ${lanName} holds`);
      const k = `${lanName}\0${to}`;
      let q = queued.get(k);
      if (q && q.bytes + 1 + bytes > room) {
        transmit(lanName, to, addr, q.json); // full: it leaves now, the message starts the next one
        q = undefined;
      }
      if (!q) queued.set(k, q = { lan: lanName, to, addr, json: [], bytes: -1 });
      q.json.push(json);
      q.bytes += 1 + bytes;
      stats.sent++;
      flushing ??= setImmediate(flush);
    },
    onMessage(cb) {
      listeners.push(cb);
    },
    stats() {
      return { ...stats, datagrams: { ...stats.datagrams }, dropped: { ...stats.dropped } };
    },
    bindings() {
      return bound.map((b) => ({ ...b }));
    },
    async close() {
      if (closed) return;
      if (flushing) {
        clearImmediate(flushing);
        flush(); // what was sent before close leaves
      }
      closed = true;
      if (inflight > 0) await new Promise<void>((r) => drained.push(r));
      await Promise.all([...sockets.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}

function bindSocket(sock: dgram.Socket, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    sock.once('error', onError);
    sock.bind({ address, port, exclusive: true }, () => {
      sock.off('error', onError);
      resolve();
    });
  });
}

function bindError(lan: string, addr: string, port: number, e: NodeJS.ErrnoException): UserError {
  const where = `cannot open the heartbeat socket of LAN "${lan}" on ${addr}:${port} (${e.code ?? e.message})`;
  switch (e.code) {
    case 'EADDRNOTAVAIL':
      return new UserError(`${where}: ${addr} is not an address of this machine. Check that this node's addr for LAN ` +
        `"${lan}" in cluster.xml is configured on an interface (\`ip -br addr\`), and that the daemon runs as the right node.`);
    case 'EADDRINUSE':
      return new UserError(`${where}: another process already uses UDP port ${port} on that address (another tandem ` +
        `daemon?). Find it with \`ss -ulpn 'sport = :${port}'\`, or change <lans port> in cluster.xml on every node.`);
    case 'EACCES':
    case 'EPERM':
      return new UserError(`${where}: permission denied. Run the daemon as root, or use a port above 1023 in <lans port>.`);
    default:
      return new UserError(`${where}. Check the address of LAN "${lan}" and <lans port> in cluster.xml.`);
  }
}

export type DropReason = keyof TransportStats['dropped'];

function emptyStats(): TransportStats {
  return {
    sent: 0, received: 0, datagrams: { sent: 0, received: 0 }, sendErrors: 0,
    dropped: { badMac: 0, replay: 0, stale: 0, badSource: 0, malformed: 0, unknownNode: 0, misdirected: 0 },
  };
}

/**
 * Rate-limited logging of drops: the first drop per (reason, LAN, source address) is logged, then at most one per
 * minute for that key; across all keys at most MAX_LINES_PER_MINUTE lines a minute, then one line saying how many
 * were not logged. Memory is bounded: keys older than a minute are pruned, and at most MAX_KEYS are remembered.
 */
export class DropLog {
  static readonly WINDOW_MS = 60_000;
  static readonly MAX_LINES_PER_MINUTE = 20;
  static readonly MAX_KEYS = 4096;
  private readonly lastLogged = new Map<string, number>();
  private windowStart = -Infinity;
  private linesInWindow = 0;
  private suppressed = 0;

  constructor(private readonly log: (msg: string) => void, private readonly now: () => number) {}

  note(reason: DropReason, lan: string, source: string, detail: string): void {
    this.emit(`${reason}|${lan}|${source.replace(/:\d+$/, '')}`,
      () => `heartbeat dropped on LAN ${lan} from ${source} (${reason}): ${detail}. ` +
        `Further drops of this kind from this source are counted, and logged at most once a minute.`);
  }

  noteSendError(lan: string, dest: string, message: string): void {
    this.emit(`sendError|${lan}|${dest}`, () => `heartbeat send on LAN ${lan} to ${dest} failed: ${message}. ` +
      `Further failures to this destination are counted, and logged at most once a minute.`);
  }

  private emit(key: string, line: () => string): void {
    const t = this.now();
    if (t - this.windowStart >= DropLog.WINDOW_MS) {
      if (this.suppressed > 0) {
        this.log(`${this.suppressed} more heartbeat drop or send-error lines were not logged in the last minute (rate limit); see the transport stats`);
      }
      this.windowStart = t;
      this.linesInWindow = 0;
      this.suppressed = 0;
      for (const [k, at] of this.lastLogged) if (t - at >= DropLog.WINDOW_MS) this.lastLogged.delete(k);
    }
    const last = this.lastLogged.get(key);
    if (last !== undefined && t - last < DropLog.WINDOW_MS) return;
    if (this.linesInWindow >= DropLog.MAX_LINES_PER_MINUTE || (last === undefined && this.lastLogged.size >= DropLog.MAX_KEYS)) {
      this.suppressed++;
      return;
    }
    this.lastLogged.set(key, t);
    this.linesInWindow++;
    this.log(line());
  }
}

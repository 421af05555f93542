import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import net from 'node:net';
import { KEY_BYTES } from '../../daemon/key.js';
import { BugError, UserError } from '../../errors.js';
import { ReplicationError } from './errors.js';
import { FrameReader } from './frames.js';
import {
  decodeHello,
  encodeHello,
  frameClear,
  type Hello,
  iv,
  MAGIC,
  NONCE,
  proof,
  PROTOCOL_VERSION,
  type SessionKeys,
  sessionKeys,
  STATUS,
  timingSafeEqualLen,
} from './handshake.js';

export { PROTOCOL_VERSION };

/**
 * The replication channel: an authenticated, encrypted, framed duplex byte-message channel over one TCP connection
 * between two nodes of cluster.xml, for one module.
 *
 * Handshake (./handshake.ts; cleartext frames: u32 length + body, body at most 1024 bytes; integers big-endian):
 *
 *   hello  = "TDRP" | u8 version (1) | u8 role (1 client, 2 server) | u8 status | 32 nonce | str8 node | str8 module
 *   C → S  hello_C                       (status 0)
 *   S → C  hello_S, proof_S              (hello_S echoes the module; status ≠ 0 = refused, then S closes)
 *   C → S  proof_C                       (sent before C checks proof_S, so a key mismatch is seen and logged on both)
 *
 *   transcript = hello_C ‖ hello_S (the exact bytes)
 *   K          = deriveKey(cluster key, 'replication')
 *   okm        = HKDF-SHA256(ikm K, salt nonce_C ‖ nonce_S,
 *                            info "tandem repl v1" ‖ 0x00 ‖ str8 client node ‖ str8 server node ‖ str8 module, 128 bytes)
 *   okm        = key C→S (32) ‖ key S→C (32) ‖ mac key C (32) ‖ mac key S (32)
 *   proof_X    = HMAC-SHA256(mac key X, transcript)       (32 bytes; separate keys, so a proof cannot be reflected)
 *
 *   Before any of that, and before any per-connection work (no buffer, no timer, no byte read), the server closes a
 *   connection whose source address is no address of `allowedPeers`, and one beyond MAX_PENDING_PER_ADDRESS
 *   handshakes in progress from its address (or MAX_PENDING_HANDSHAKES in all): a host without the key cannot hold
 *   the handshake slots the SECOND needs (it cannot complete a TCP handshake from a peer's address off-path).
 *   The server refuses (status, then close) a node name not in `allowedPeers`, a connection whose source address is
 *   not that node's address, a module it does not serve, another version; and (close) a wrong proof_C. The client
 *   refuses a server whose name or module is not the expected one, and a wrong proof_S. The node names, module name
 *   and nonces are visible on the wire; no payload ever is.
 *
 * Data frames (after the handshake, each direction independently; split by ./frames.ts):
 *
 *   u32 L | ciphertext (L - 16 bytes) | 16-byte GCM tag          16 ≤ L ≤ MAX_FRAME + 16
 *   AES-256-GCM, key = that direction's key, IV = 4 zero bytes ‖ u64 frame counter (0, 1, 2…), AAD = the 4 bytes of L
 *
 *   The counter is implicit: the receiver decrypts with the counter it expects, so a replayed, reordered, dropped,
 *   forged or modified frame fails the tag check and closes the channel. Keys are fresh per connection (both nonces
 *   are random), so a (key, IV) pair is never reused. L is checked before anything is buffered for the frame.
 */

/** the largest plaintext frame */
export const MAX_FRAME = 16 * 1024 * 1024;
const TAG = 16;
const HS_MAX = 1024;
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_PENDING_HANDSHAKES = 32;
/** handshakes in progress from one source address (a peer opens one per module that (re)connects) */
export const MAX_PENDING_PER_ADDRESS = 8;

/**
 * An authenticated channel. Contract:
 * - `send` encrypts the frame at once (frames go out in the order of `send` calls) and resolves when the socket took
 *   it, or, when the socket's buffer is full, once it has drained (backpressure). It rejects after the channel closed.
 * - `onFrame`: frames arrive in order, each exactly once, only after authentication; frames that arrive before a
 *   callback is set are kept for it. The callback runs on the event loop: it must not block; if it throws, the
 *   channel closes with that error.
 * - `closed` resolves once: null when this side called `close()`, else the reason (ReplicationError, or the error
 *   a callback threw).
 */
export interface Channel {
  readonly peer: string;
  readonly module: string;
  /** `address:port` of the other end */
  readonly remote: string;
  /** one frame: a Buffer, or parts that make one frame when joined (they are not joined in memory to be sent) */
  send(frame: Buffer | readonly Buffer[]): Promise<void>;
  onFrame(cb: (frame: Buffer) => void): void;
  /** closes gracefully (queued frames are flushed first); with `reason`, closes at once and reports it */
  close(reason?: Error): void;
  readonly closed: Promise<Error | null>;
  stats(): ChannelStats;
}

export interface ChannelStats {
  framesSent: number;
  framesReceived: number;
  /** bytes on the wire, headers and tags included */
  bytesSent: number;
  bytesReceived: number;
}

export interface ConnectOptions {
  host: string;
  port: number;
  /** the local address to connect from: this node's address on the replication LAN (the server checks it) */
  localAddress?: string;
  /** this node's name */
  self: string;
  /** the node expected at host:port */
  peer: string;
  module: string;
  /** the cluster key (32 bytes); the replication sub-key is derived from it */
  key: Buffer;
  /** for connect + handshake; default 10 s */
  timeoutMs?: number;
}

export interface AllowedPeer {
  name: string;
  addr: string;
}

export interface ListenOptions {
  /** address to listen on: this node's address on the replication LAN (never all interfaces unless asked) */
  host: string;
  /** 0 picks a free port (see `Listener.port`) */
  port: number;
  self: string;
  allowedPeers: AllowedPeer[];
  module?: string;
  modules?: string[];
  key: Buffer;
  /** called with each authenticated channel; must not throw */
  onChannel: (ch: Channel) => void;
  handshakeTimeoutMs?: number;
  /** refusals are logged here (rate-limited: at most LOG_PER_MINUTE lines a minute) */
  log?: (msg: string) => void;
}

/**
 * Why the listener refused a connection: `aborted` = the client closed after our hello without sending its proof
 * (a client with another cluster key does that only if it could not send its proof in time).
 */
export type RefusalReason = 'malformed' | 'version' | 'unknownNode' | 'badAddress' | 'unknownModule' | 'badKey' | 'timeout' | 'busy' | 'aborted';

export interface Listener {
  readonly address: string;
  readonly port: number;
  stats(): { accepted: number; refused: Record<RefusalReason, number> };
  /** stops listening and closes connections still in handshake (established channels are the owner's) */
  close(): Promise<void>;
}

export const LOG_PER_MINUTE = 10;

// ── client ───────────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Connects and authenticates. Rejects with UserError when the peer refused us or failed authentication (a fix in
 * cluster.xml, userconfig.xml or cluster.key is needed), ReplicationError('timeout') when connect + handshake took
 * longer than `timeoutMs`, ReplicationError('link-lost') when the connection failed or closed.
 */
export function connectChannel(opts: ConnectOptions): Promise<Channel> {
  checkKey(opts.key);
  checkName('self', opts.self);
  checkName('peer', opts.peer);
  checkName('module', opts.module);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const where = `${opts.peer} at ${opts.host}:${opts.port}`;
  return new Promise<Channel>((resolve, reject) => {
    const sock = net.connect({ host: opts.host, port: opts.port, localAddress: opts.localAddress });
    sock.setNoDelay(true);
    const reader = new FrameReader(HS_MAX);
    let done = false;
    const finish = (e: Error | null, ch?: Channel) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.off('data', onData);
      if (e) {
        // end, not destroy: a proof already written still reaches the server, which then logs the key mismatch too
        sock.end();
        setTimeout(() => sock.destroy(), 1000).unref();
        reject(e);
      } else {
        resolve(ch!);
      }
    };
    const timer = setTimeout(
      () => finish(new ReplicationError('timeout', `replication channel to ${where}: no connection and handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('error', (e) => finish(new ReplicationError('link-lost', `replication channel to ${where}: ${e.message}`)));
    sock.on('close', () => finish(new ReplicationError('link-lost', `replication channel to ${where}: the connection closed during the handshake` +
      ' (the peer refused it: check its log for a wrong cluster key or an address not in cluster.xml)')));

    const nonceC = randomBytes(NONCE);
    const helloC = encodeHello({ role: 1, status: STATUS.ok, nonce: nonceC, node: opts.self, module: opts.module });
    let helloS: Hello | null = null;
    let keys: SessionKeys | null = null;

    sock.on('connect', () => sock.write(frameClear(helloC)));
    const onData = (chunk: Buffer) => {
      try {
        reader.push(chunk);
        for (;;) {
          const f = reader.next();
          if (f === null) return;
          if (!helloS) {
            const h = decodeHello(f);
            if (!h || h.role !== 2 || (h.version !== PROTOCOL_VERSION && h.status === STATUS.ok)) throw new ReplicationError('protocol', `replication channel to ${where}: not a tandem replication server`);
            if (h.status !== STATUS.ok) throw refusedBy(where, h.status, opts);
            if (h.node !== opts.peer) {
              throw new UserError(`replication channel to ${opts.host}:${opts.port}: the node there is "${h.node}", not "${opts.peer}". ` +
                'Check the addresses in cluster.xml.');
            }
            if (h.module !== opts.module) throw new ReplicationError('protocol', `replication channel to ${where}: answered for module "${h.module}", not "${opts.module}"`);
            helloS = h;
            keys = sessionKeys(opts.key, nonceC, h.nonce, opts.self, h.node, opts.module);
            sock.write(frameClear(proof(keys.macC, helloC, h.raw)));
            reader.max = NONCE;
          } else {
            if (!timingSafeEqualLen(f, proof(keys!.macS, helloC, helloS.raw))) {
              throw new UserError(`replication channel to ${where}: the peer failed authentication: its cluster key differs from this node's. ` +
                'Copy cluster.key from one node to the other (the same file on every node) and restart the daemon.');
            }
            const rest = reader.drain();
            finish(null, new SecureChannel(sock, keys!.c2s, keys!.s2c, opts.peer, opts.module, rest));
            return;
          }
        }
      } catch (e) {
        finish(e as Error);
      }
    };
    sock.on('data', onData);
  });
}

function refusedBy(where: string, status: number, opts: ConnectOptions): Error {
  switch (status) {
    case STATUS.version:
      return new UserError(`${where} refused the replication channel: it speaks another protocol version. Run the same tandem version on both nodes.`);
    case STATUS.unknownNode:
      return new UserError(`${where} refused the replication channel: it does not know node "${opts.self}". Use the same cluster.xml on every node.`);
    case STATUS.badAddress:
      return new UserError(`${where} refused the replication channel: this connection does not come from ${opts.self}'s address in its cluster.xml` +
        `${opts.localAddress ? ` (connected from ${opts.localAddress})` : ''}. Check the addresses in cluster.xml on both nodes.`);
    case STATUS.unknownModule:
      return new UserError(`${where} refused the replication channel: module "${opts.module}" is not replicated there. Install the same module on both nodes.`);
    default:
      return new ReplicationError('protocol', `${where} refused the replication channel (status ${status})`);
  }
}

// ── server ───────────────────────────────────────────────────────────────────────────────────────────────────────

/** Listens for replication channels. Resolves once listening; rejects (UserError) when the address cannot be bound. */
export function listenChannels(opts: ListenOptions): Promise<Listener> {
  checkKey(opts.key);
  checkName('self', opts.self);
  const modules = new Set([...(opts.module !== undefined ? [opts.module] : []), ...(opts.modules ?? [])]);
  if (modules.size === 0) throw new BugError('listenChannels: no module to serve');
  for (const m of modules) checkName('module', m);
  const peers = new Map(opts.allowedPeers.map((p) => [p.name, p.addr]));
  const timeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const refused: Record<RefusalReason, number> = {
    malformed: 0, version: 0, unknownNode: 0, badAddress: 0, unknownModule: 0, badKey: 0, timeout: 0, busy: 0, aborted: 0,
  };
  let accepted = 0;
  const pending = new Set<net.Socket>();
  const pendingFrom = new Map<string, number>();
  const peerAddrs = new Set(opts.allowedPeers.map((p) => p.addr));
  const logLimit = new LogLimit(opts.log ?? (() => {}));

  const refuse = (sock: net.Socket, reason: RefusalReason, detail: string, status?: number, hello?: Buffer) => {
    refused[reason]++;
    logLimit.log(`replication: refused a connection from ${sock.remoteAddress}:${sock.remotePort} (${reason}): ${detail}`);
    if (status !== undefined && hello) sock.end(frameClear(hello));
    else sock.destroy();
    setTimeout(() => sock.destroy(), 1000).unref();
  };

  const server = net.createServer((sock) => {
    sock.on('error', () => {}); // reported through 'close' or the handshake result
    const remoteAddr = plainIPv4(sock.remoteAddress ?? '');
    if (!peerAddrs.has(remoteAddr)) {
      refused.badAddress++;
      logLimit.log(`replication: dropped a connection from ${remoteAddr}: not the address of a node of this LAN in cluster.xml`);
      sock.destroy();
      return;
    }
    const fromHere = pendingFrom.get(remoteAddr) ?? 0;
    if (pending.size >= MAX_PENDING_HANDSHAKES || fromHere >= MAX_PENDING_PER_ADDRESS) {
      refused.busy++;
      logLimit.log(`replication: dropped a connection from ${remoteAddr}: ${fromHere >= MAX_PENDING_PER_ADDRESS
        ? `${MAX_PENDING_PER_ADDRESS} handshakes from that address` : `${MAX_PENDING_HANDSHAKES} handshakes`} already in progress`);
      sock.destroy();
      return;
    }
    pending.add(sock);
    pendingFrom.set(remoteAddr, fromHere + 1);
    sock.setNoDelay(true);
    const reader = new FrameReader(HS_MAX);
    let helloC: Hello | null = null;
    let helloS: Buffer | null = null;
    let keys: SessionKeys | null = null;
    let done = false;
    const stop = () => {
      done = true;
      clearTimeout(timer);
      if (pending.delete(sock)) {
        const n = (pendingFrom.get(remoteAddr) ?? 1) - 1;
        if (n > 0) pendingFrom.set(remoteAddr, n);
        else pendingFrom.delete(remoteAddr);
      }
      sock.off('data', onData);
    };
    const timer = setTimeout(() => {
      if (done) return;
      stop();
      refuse(sock, 'timeout', `no complete handshake within ${timeoutMs} ms`);
    }, timeoutMs);
    sock.on('close', () => {
      if (done) return;
      stop();
      if (helloC) {
        refused.aborted++;
        logLimit.log(`replication: ${helloC.node} (${remoteAddr}) closed the connection during the handshake, before proving its key`);
      }
    });
    const onData = (chunk: Buffer) => {
      if (done) return;
      let f: Buffer | null;
      try {
        reader.push(chunk);
        f = reader.next();
      } catch (e) {
        stop();
        return refuse(sock, 'malformed', (e as Error).message);
      }
      while (f !== null && !done) {
        if (!helloC) {
          const reply = (status: number, module = '') =>
            encodeHello({ role: 2, status, nonce: randomBytes(NONCE), node: opts.self, module });
          if (f.length > 5 && f.subarray(0, 4).equals(MAGIC) && f[4] !== PROTOCOL_VERSION) {
            stop();
            return refuse(sock, 'version', `protocol version ${f[4]}, this node speaks ${PROTOCOL_VERSION}`, STATUS.version, reply(STATUS.version));
          }
          const h = decodeHello(f);
          if (!h || h.role !== 1 || h.status !== 0) {
            stop();
            return refuse(sock, 'malformed', 'not a tandem replication client hello');
          }
          const addr = peers.get(h.node);
          if (addr === undefined || h.node === opts.self) {
            stop();
            return refuse(sock, 'unknownNode', `claims to be node ${JSON.stringify(h.node)}, which is not a peer in cluster.xml`, STATUS.unknownNode,
              reply(STATUS.unknownNode));
          }
          if (addr !== remoteAddr) {
            stop();
            return refuse(sock, 'badAddress', `claims to be ${h.node}, whose address in cluster.xml is ${addr}`, STATUS.badAddress,
              reply(STATUS.badAddress));
          }
          if (!modules.has(h.module)) {
            stop();
            return refuse(sock, 'unknownModule', `${h.node} asked for module ${JSON.stringify(h.module)}, not served here`, STATUS.unknownModule,
              reply(STATUS.unknownModule, h.module));
          }
          helloC = h;
          const nonceS = randomBytes(NONCE);
          helloS = encodeHello({ role: 2, status: STATUS.ok, nonce: nonceS, node: opts.self, module: h.module });
          keys = sessionKeys(opts.key, h.nonce, nonceS, h.node, opts.self, h.module);
          sock.write(frameClear(helloS));
          sock.write(frameClear(proof(keys.macS, h.raw, helloS)));
          reader.max = NONCE;
        } else {
          if (!timingSafeEqualLen(f, proof(keys!.macC, helloC.raw, helloS!))) {
            stop();
            return refuse(sock, 'badKey', `${helloC.node} failed authentication: wrong cluster key, or a forged connection`);
          }
          stop();
          accepted++;
          const ch = new SecureChannel(sock, keys!.s2c, keys!.c2s, helloC.node, helloC.module, reader.drain());
          opts.onChannel(ch);
          return;
        }
        try {
          f = reader.next();
        } catch (e) {
          stop();
          return refuse(sock, 'malformed', (e as Error).message);
        }
      }
    };
    sock.on('data', onData);
  });

  return new Promise<Listener>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      reject(new UserError(`cannot listen for replication on ${opts.host}:${opts.port}: ${e.code ?? e.message}. ` +
        (e.code === 'EADDRINUSE' ? 'Another process uses that port; stop it or change the port.' :
          e.code === 'EADDRNOTAVAIL' ? 'That address is not configured on this node; check cluster.xml.' : 'Check the address and port.')));
    });
    server.listen({ host: opts.host, port: opts.port, exclusive: true }, () => {
      const a = server.address() as net.AddressInfo;
      resolve({
        address: a.address,
        port: a.port,
        stats: () => ({ accepted, refused: { ...refused } }),
        // server.close() frees the port at once; its callback would wait for the established channels, which
        // belong to their owners and may live on
        close: () =>
          new Promise<void>((res) => {
            for (const s of pending) s.destroy();
            pending.clear();
            pendingFrom.clear();
            server.close();
            setImmediate(res);
          }),
      });
    });
  });
}

// ── the authenticated channel ────────────────────────────────────────────────────────────────────────────────────

class SecureChannel implements Channel {
  readonly closed: Promise<Error | null>;
  readonly remote: string;
  private resolveClosed!: (e: Error | null) => void;
  private reason: Error | null | undefined = undefined;
  private sendCounter = 0n;
  private recvCounter = 0n;
  private readonly reader = new FrameReader(MAX_FRAME + TAG, TAG);
  private handler: ((f: Buffer) => void) | null = null;
  private readonly early: Buffer[] = [];
  private drainWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private readonly counters: ChannelStats = { framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0 };

  constructor(
    private readonly sock: net.Socket,
    private readonly sendKey: Buffer,
    private readonly recvKey: Buffer,
    readonly peer: string,
    readonly module: string,
    buffered: Buffer,
  ) {
    this.remote = `${plainIPv4(sock.remoteAddress ?? '?')}:${sock.remotePort ?? '?'}`;
    this.closed = new Promise((r) => (this.resolveClosed = r));
    sock.on('data', (c: Buffer) => this.onData(c));
    sock.on('drain', () => this.wakeDrain());
    sock.on('end', () => this.fail(new ReplicationError('link-lost', `${peer} closed the replication channel of ${module}`)));
    sock.on('error', (e) => this.fail(new ReplicationError('link-lost', `replication channel to ${peer} (${module}): ${e.message}`)));
    sock.on('close', () => {
      this.fail(new ReplicationError('link-lost', `replication channel to ${peer} (${module}) closed`));
      this.wakeDrain();
    });
    if (buffered.length > 0) queueMicrotask(() => this.onData(buffered));
  }

  send(frame: Buffer | readonly Buffer[]): Promise<void> {
    if (this.reason !== undefined) return Promise.reject(this.reason ?? new ReplicationError('closed', `replication channel to ${this.peer} was closed`));
    const parts = Buffer.isBuffer(frame) ? [frame] : Array.isArray(frame) && frame.every((p) => Buffer.isBuffer(p)) ? frame : null;
    const length = parts?.reduce((n, p) => n + p.length, 0) ?? 0;
    if (!parts || length > MAX_FRAME) {
      return Promise.reject(new BugError(`replication channel: a frame must be a Buffer (or Buffers) of at most ${MAX_FRAME} bytes`));
    }
    const header = Buffer.alloc(4);
    header.writeUInt32BE(length + TAG);
    const c = createCipheriv('aes-256-gcm', this.sendKey, iv(this.sendCounter++));
    c.setAAD(header);
    // the pieces go out in one writev: the ciphertext of a large part is not copied again to join it to the header
    const wire = [header, ...parts.filter((p) => p.length > 0).map((p) => c.update(p))];
    const fin = c.final();
    wire.push(fin.length > 0 ? Buffer.concat([fin, c.getAuthTag()]) : c.getAuthTag());
    this.counters.framesSent++;
    this.counters.bytesSent += length + 4 + TAG;
    let ok = true;
    this.sock.cork();
    for (const w of wire) ok = this.sock.write(w);
    this.sock.uncork();
    if (ok) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  onFrame(cb: (frame: Buffer) => void): void {
    this.handler = cb;
    while (this.early.length > 0 && this.reason === undefined) this.deliver(this.early.shift()!);
  }

  close(reason?: Error): void {
    if (this.reason !== undefined) return;
    if (reason) {
      this.fail(reason);
      return;
    }
    this.reason = null;
    this.resolveClosed(null);
    this.sock.end();
    setTimeout(() => this.sock.destroy(), 2000).unref();
    this.wakeDrain();
  }

  stats(): ChannelStats {
    return { ...this.counters };
  }

  private fail(e: Error): void {
    if (this.reason !== undefined) return;
    this.reason = e;
    this.resolveClosed(e);
    this.sock.destroy();
    this.early.length = 0;
    this.wakeDrain();
  }

  private wakeDrain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) {
      if (this.reason === undefined || this.reason === null) w.resolve();
      else w.reject(this.reason);
    }
  }

  private onData(chunk: Buffer): void {
    if (this.reason !== undefined) return;
    this.counters.bytesReceived += chunk.length;
    try {
      this.reader.push(chunk);
      for (;;) {
        if (this.reason !== undefined) return;
        const f = this.reader.next();
        if (f === null) return;
        const plain = this.open(f);
        this.counters.framesReceived++;
        if (this.handler) this.deliver(plain);
        else this.early.push(plain);
      }
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private open(f: Buffer): Buffer {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(f.length);
    const n = this.recvCounter;
    const d = createDecipheriv('aes-256-gcm', this.recvKey, iv(n));
    d.setAAD(header);
    d.setAuthTag(f.subarray(f.length - TAG));
    try {
      const out = d.update(f.subarray(0, f.length - TAG));
      const fin = d.final(); // empty for GCM: then the plaintext is not copied again
      const plain = fin.length > 0 ? Buffer.concat([out, fin]) : out;
      this.recvCounter++;
      return plain;
    } catch {
      throw new ReplicationError('tampered', `replication channel from ${this.peer} (${this.module}): frame ${n} failed authentication ` +
        '(tampered, forged, replayed, reordered or dropped on the way); channel closed');
    }
  }

  private deliver(plain: Buffer): void {
    try {
      this.handler!(plain);
    } catch (e) {
      this.fail(e instanceof Error ? e : new BugError(String(e)));
    }
  }
}

// ── helpers ──────────────────────────────────────────────────────────────────────────────────────────────────────

function plainIPv4(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

function checkKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) throw new BugError(`replication channel: the cluster key must be ${KEY_BYTES} bytes`);
}

function checkName(what: string, s: string): void {
  if (typeof s !== 'string' || s === '' || Buffer.byteLength(s, 'utf8') > 255) throw new BugError(`replication channel: ${what} name must be 1..255 bytes`);
}

/** At most LOG_PER_MINUTE lines a minute; the first line after a quiet period says how many were suppressed. */
class LogLimit {
  private windowStart = -Infinity;
  private lines = 0;
  private suppressed = 0;
  constructor(private readonly out: (msg: string) => void) {}
  log(msg: string): void {
    const now = performance.now();
    if (now - this.windowStart >= 60_000) {
      if (this.suppressed > 0) this.out(`replication: ${this.suppressed} more refusals not logged in the last minute`);
      this.windowStart = now;
      this.lines = 0;
      this.suppressed = 0;
    }
    if (this.lines < LOG_PER_MINUTE) {
      this.lines++;
      this.out(msg);
    } else {
      this.suppressed++;
    }
  }
}

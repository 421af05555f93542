import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { BugError, ExternalError, UserError } from '../errors.js';

/**
 * The local control channel between the CLI and the daemon: a unix socket (`homePaths.controlSocket`, mode 0600)
 * carrying newline-delimited JSON, one object per line, UTF-8.
 *
 * Client → daemon, one line per request:   {"id":1,"cmd":"status","module":"web","args":{}}
 * Daemon → client, one line per response:
 *   {"id":1,"ok":true,"result":…}                          the answer (ends the request)
 *   {"id":1,"ok":true,"event":…}                           a stream item (zero or more, before the result)
 *   {"id":1,"ok":false,"error":{"kind":"user","message":"…","hint":"…"}}      ends the request
 * `kind` is 'user' | 'external' | 'bug' (the three classes of src/errors.ts); 'external' errors also carry `command`,
 * `exitCode` and `stderr`. A request that cannot be read gets an error with `"id":null`.
 * A connection may carry several requests, answered independently (responses of different ids may interleave).
 * This wire format is a public contract (STYLE.md §6): extend it only with optional fields.
 */
export interface ControlRequest {
  id: number;
  cmd: string;
  module?: string;
  args?: Record<string, unknown>;
}

export interface ControlErrorBody {
  kind: 'user' | 'external' | 'bug';
  message: string;
  hint?: string;
  /** kind 'external' only */
  command?: string;
  exitCode?: number | null;
  stderr?: string;
}

export type ControlResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: true; event: unknown }
  | { id: number | null; ok: false; error: ControlErrorBody };

export interface ControlContext {
  /** aborted when the client disconnects or the server closes; long waits and streams should stop on it */
  signal: AbortSignal;
}

/**
 * Serves one request. The value it returns (or resolves to) is the result. If that value is an async iterable, each
 * item is sent as an event and the iterator's return value as the result; the iterator is closed (`return()`) when
 * the client goes away. Throw UserError / ExternalError for expected failures; anything else is reported as a bug.
 * Results and events must be JSON-serializable (`undefined` is sent as null).
 */
export type ControlHandler = (req: ControlRequest, ctx: ControlContext) => unknown;

export interface ControlServer {
  readonly path: string;
  /** Stops accepting, drops open connections (aborting their handlers' signals), removes the socket file. */
  close(): Promise<void>;
}

/** A request line longer than this is answered with an error and the connection is closed. */
export const MAX_REQUEST_LINE = 1024 * 1024;
/** Longest response line the client accepts (protects the CLI from a runaway daemon). */
const MAX_RESPONSE_LINE = 64 * 1024 * 1024;
/** sun_path is 108 bytes on Linux, including the terminating NUL */
const MAX_SOCKET_PATH = 107;

export interface ControlHomeOption {
  /** TANDEM_HOME root, for messages; defaults to the socket's directory (the socket lives at <home>/control.sock) */
  home?: string;
}

/**
 * Starts the daemon's control server on `socketPath`.
 * - If a daemon answers on the socket, refuses (UserError): one daemon per TANDEM_HOME.
 * - If the file exists and nothing answers (a daemon that died), removes it; a non-socket file there is refused.
 * - The socket is created with mode 0600 (no window where it is more open).
 */
export async function startControlServer(
  socketPath: string,
  handler: ControlHandler,
  opts: ControlHomeOption = {},
): Promise<ControlServer> {
  const home = opts.home ?? path.dirname(socketPath);
  checkSocketPath(socketPath);
  await checkSocketDir(socketPath);
  await removeStaleSocket(socketPath, home);

  const conns = new Set<Connection>();
  const server = net.createServer((sock) => {
    const c = new Connection(sock, handler);
    conns.add(c);
    sock.on('close', () => conns.delete(c));
  });
  await listen(server, socketPath, home);
  await fs.chmod(socketPath, 0o600);
  const { ino } = await fs.stat(socketPath);

  let closing: Promise<void> | undefined;
  return {
    path: socketPath,
    close() {
      closing ??= (async () => {
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const c of conns) c.destroy();
        await done;
        // remove the socket only if it is still ours
        const st = await fs.stat(socketPath).catch(() => undefined);
        if (st && st.ino === ino) await fs.rm(socketPath, { force: true });
      })();
      return closing;
    },
  };
}

function checkSocketPath(socketPath: string): void {
  const n = Buffer.byteLength(socketPath);
  if (n > MAX_SOCKET_PATH) {
    throw new UserError(`the control socket path ${socketPath} is ${n} bytes long; unix sockets allow ${MAX_SOCKET_PATH}. ` +
      `Use a shorter TANDEM_HOME.`);
  }
}

/** Node reports every bind failure of a unix socket as EACCES, so tell a missing directory apart beforehand. */
async function checkSocketDir(socketPath: string): Promise<void> {
  const dir = path.dirname(socketPath);
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new UserError(`cannot create the control socket ${socketPath}: directory ${dir} does not exist. Check TANDEM_HOME.`);
  }
}

async function removeStaleSocket(socketPath: string, home: string): Promise<void> {
  const st = await fs.lstat(socketPath).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!st) return;
  if (!st.isSocket()) {
    throw new UserError(`${socketPath} exists and is not a socket, so the daemon cannot create its control socket there. ` +
      `Move or remove that file, then start the daemon again.`);
  }
  const answer = await probe(socketPath, home);
  if (answer === 'answers') {
    throw new UserError(`a daemon is already running for TANDEM_HOME=${home} (it answers on ${socketPath}). ` +
      `Stop it first (\`systemctl stop tandem\`), or use another TANDEM_HOME.`);
  }
  if (answer === 'refused') await fs.rm(socketPath, { force: true });
}

/** Whether something accepts connections on the socket. */
function probe(socketPath: string, home: string): Promise<'answers' | 'refused' | 'gone'> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    const timer = setTimeout(() => {
      s.destroy();
      resolve('answers'); // connect on a unix socket does not hang unless a process holds it with a full backlog
    }, 2000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('answers');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ECONNREFUSED') resolve('refused');
      else if (e.code === 'ENOENT') resolve('gone');
      else if (e.code === 'EAGAIN') resolve('answers');
      else reject(connectError(socketPath, home, e));
    });
  });
}

function listen(server: net.Server, socketPath: string, home: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') {
        reject(new UserError(`a daemon is already running for TANDEM_HOME=${home} (it just created ${socketPath}). ` +
          `Stop it first (\`systemctl stop tandem\`), or use another TANDEM_HOME.`));
      } else if (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'ENOENT') {
        reject(new UserError(`cannot create the control socket ${socketPath} (${e.code}): check that ${path.dirname(socketPath)} ` +
          `exists and is writable, and run the daemon as root.`));
      } else {
        reject(e);
      }
    });
    // The umask applies to the socket file at bind time, which happens synchronously inside listen().
    const old = process.umask(0o177);
    try {
      server.listen(socketPath, () => resolve());
    } finally {
      process.umask(old);
    }
  });
}

/** Splits a byte stream into lines (without '\n'); reports a line longer than `max` bytes instead of buffering it. */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly max: number) {}

  /** Returns the complete lines, or 'overflow' once a line exceeds `max` (the splitter is then unusable). */
  push(chunk: Buffer): string[] | 'overflow' {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      if (this.size + (nl - start) > this.max) return 'overflow';
      this.parts.push(chunk.subarray(start, nl));
      lines.push(Buffer.concat(this.parts).toString('utf8'));
      this.parts = [];
      this.size = 0;
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.size += chunk.length - start;
      if (this.size > this.max) return 'overflow';
      this.parts.push(chunk.subarray(start));
    }
    return lines;
  }
}

class Connection {
  private readonly splitter = new LineSplitter(MAX_REQUEST_LINE);
  private readonly abort = new AbortController();
  private dead = false;

  constructor(private readonly sock: net.Socket, private readonly handler: ControlHandler) {
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', () => {}); // EPIPE / ECONNRESET when the client leaves: nothing to do but stop
    sock.on('close', () => this.stop());
  }

  destroy(): void {
    this.stop();
    this.sock.destroy();
  }

  private stop(): void {
    if (this.dead) return;
    this.dead = true;
    this.abort.abort();
  }

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    const lines = this.splitter.push(chunk);
    if (lines === 'overflow') {
      const res: ControlResponse = { id: null, ok: false, error: { kind: 'user',
        message: `request line longer than ${MAX_REQUEST_LINE} bytes; the connection is closed` } };
      this.stop();
      this.sock.end(`${JSON.stringify(res)}\n`, () => this.sock.destroy());
      return;
    }
    for (const line of lines) if (line.trim() !== '') void this.serve(line);
  }

  private async serve(line: string): Promise<void> {
    const req = parseRequest(line);
    if ('error' in req) {
      this.send({ id: req.id, ok: false, error: { kind: 'user', message: req.error } });
      return;
    }
    const id = req.req.id;
    let iterator: AsyncIterator<unknown> | undefined;
    try {
      const out = await this.handler(req.req, { signal: this.abort.signal });
      if (!isAsyncIterable(out)) {
        this.send({ id, ok: true, result: out ?? null });
        return;
      }
      iterator = out[Symbol.asyncIterator]();
      for (;;) {
        if (this.dead) return;
        const r = await iterator.next();
        if (r.done) {
          iterator = undefined;
          this.send({ id, ok: true, result: r.value ?? null });
          return;
        }
        if (!this.send({ id, ok: true, event: r.value ?? null })) await this.drained();
      }
    } catch (e) {
      iterator = undefined;
      this.send({ id, ok: false, error: errorBody(e) });
    } finally {
      if (iterator?.return) await Promise.resolve(iterator.return()).catch(() => {});
    }
  }

  /** Writes one response line; returns false when the socket's buffer is full (wait for drain). */
  private send(res: ControlResponse): boolean {
    if (this.dead || this.sock.destroyed) return true;
    let line: string;
    try {
      line = JSON.stringify(res);
    } catch (e) {
      line = JSON.stringify({ id: res.id, ok: false, error: errorBody(new BugError(
        `the daemon's answer to request ${res.id} is not JSON-serializable: ${(e as Error).message}`)) });
    }
    return this.sock.write(`${line}\n`);
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.sock.off('drain', done);
        this.sock.off('close', done);
        resolve();
      };
      this.sock.on('drain', done);
      this.sock.on('close', done);
    });
  }
}

/** One request line → the request, or why it is refused (answered with `id` null when there is no usable id). Never throws. */
export function parseRequest(line: string): { req: ControlRequest } | { id: number | null; error: string } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { id: null, error: 'malformed request: not a JSON object on one line' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    return { id: null, error: 'malformed request: not a JSON object on one line' };
  }
  const o = v as Record<string, unknown>;
  if (typeof o.id !== 'number' || !Number.isSafeInteger(o.id)) {
    return { id: null, error: 'malformed request: "id" must be an integer' };
  }
  const id = o.id;
  if (typeof o.cmd !== 'string' || o.cmd === '') return { id, error: 'malformed request: "cmd" must be a non-empty string' };
  if (o.module !== undefined && typeof o.module !== 'string') return { id, error: 'malformed request: "module" must be a string' };
  if (o.args !== undefined && (typeof o.args !== 'object' || o.args === null || Array.isArray(o.args))) {
    return { id, error: 'malformed request: "args" must be an object' };
  }
  const req: ControlRequest = { id, cmd: o.cmd };
  if (o.module !== undefined) req.module = o.module as string;
  if (o.args !== undefined) req.args = o.args as Record<string, unknown>;
  return { req };
}

function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as Record<symbol, unknown>)[Symbol.asyncIterator] === 'function';
}

/** Maps a thrown value to the wire: UserError → user, ExternalError → external, anything else → bug (with stack). */
export function errorBody(e: unknown): ControlErrorBody {
  if (e instanceof UserError) return e.hint === undefined ? { kind: 'user', message: e.message } : { kind: 'user', message: e.message, hint: e.hint };
  if (e instanceof ExternalError) {
    return { kind: 'external', message: e.message, command: e.command, exitCode: e.exitCode, stderr: e.stderr };
  }
  const err = e instanceof Error ? e : new Error(`non-Error thrown: ${safeString(e)}`);
  const stack = err.stack ?? '';
  return { kind: 'bug', message: stack.includes(err.message) ? stack : `${err.message}\n${stack}` };
}

function safeString(v: unknown): string {
  try {
    return typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** The client side of `errorBody`. */
export function errorFromBody(b: ControlErrorBody): Error {
  switch (b.kind) {
    case 'user':
      return new UserError(b.message, b.hint);
    case 'external':
      return new ExternalError(b.command ?? '(a command run by the daemon)', b.exitCode ?? null, b.stderr ?? '', b.message);
    default:
      return new BugError(b.message);
  }
}

export interface ControlClientOptions extends ControlHomeOption {
  /** controlRequest: time for the whole answer; controlStream: time until the first event or the result. Default 30 s. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
let nextId = 1;

/**
 * Sends one request to the daemon and resolves with its result. Events (if the daemon streams) are ignored.
 * Rejects with UserError when no daemon runs, on timeout, or when the daemon closes the connection without an answer;
 * error responses are re-thrown as UserError / ExternalError / BugError.
 */
export function controlRequest(
  socketPath: string,
  cmd: string,
  module?: string,
  args?: Record<string, unknown>,
  opts: ControlClientOptions = {},
): Promise<unknown> {
  return exchange(socketPath, cmd, module, args, opts, undefined, undefined);
}

/**
 * Like controlRequest, but calls `onEvent` for each streamed item (in order) and resolves with the final result.
 * Aborting `opts.signal` closes the connection (the daemon stops the stream) and resolves with undefined.
 * If `onEvent` throws, the connection is closed and the promise rejects with that error.
 */
export function controlStream(
  socketPath: string,
  cmd: string,
  module: string | undefined,
  args: Record<string, unknown> | undefined,
  onEvent: (event: unknown) => void,
  opts: ControlClientOptions & { signal?: AbortSignal } = {},
): Promise<unknown> {
  return exchange(socketPath, cmd, module, args, opts, onEvent, opts.signal);
}

function exchange(
  socketPath: string,
  cmd: string,
  module: string | undefined,
  args: Record<string, unknown> | undefined,
  opts: ControlClientOptions,
  onEvent: ((event: unknown) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<unknown> {
  const home = opts.home ?? path.dirname(socketPath);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const id = nextId++;
  const req: ControlRequest = { id, cmd };
  if (module !== undefined) req.module = module;
  if (args !== undefined) req.args = args;

  return new Promise((resolve, reject) => {
    checkSocketPath(socketPath);
    let line: string;
    try {
      line = `${JSON.stringify(req)}\n`;
    } catch (e) {
      throw new BugError(`control request \`${cmd}\` has arguments that are not JSON-serializable: ${(e as Error).message}`);
    }
    if (signal?.aborted) return resolve(undefined);
    const sock = net.connect(socketPath);
    const splitter = new LineSplitter(MAX_RESPONSE_LINE);
    let settled = false;
    const finish = (err: Error | undefined, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const onAbort = () => finish(undefined, undefined);
    signal?.addEventListener('abort', onAbort);
    const timer = setTimeout(() => {
      const s = Number((timeoutMs / 1000).toFixed(3));
      finish(new UserError(`the tandem daemon for TANDEM_HOME=${home} did not answer \`${cmd}\` within ${s} s ` +
        `(socket ${socketPath}). It may be busy or stuck: check ${path.join(home, 'log', 'daemon.log')}.`));
    }, timeoutMs);

    sock.on('connect', () => sock.write(line));
    sock.on('error', (e: NodeJS.ErrnoException) => finish(connectError(socketPath, home, e)));
    sock.on('close', () => finish(new UserError(`the tandem daemon for TANDEM_HOME=${home} closed the connection without ` +
      `answering \`${cmd}\` (did it stop?). Check ${path.join(home, 'log', 'daemon.log')}.`)));
    sock.on('data', (chunk: Buffer) => {
      const lines = splitter.push(chunk);
      if (lines === 'overflow') return finish(new BugError(`the daemon sent a response line over ${MAX_RESPONSE_LINE} bytes`));
      for (const line of lines) {
        if (settled) return;
        let res: Record<string, unknown>;
        try {
          res = JSON.parse(line) as Record<string, unknown>;
          if (typeof res !== 'object' || res === null) throw new Error('not an object');
        } catch {
          return finish(new BugError(`the daemon sent a malformed response line: ${line.slice(0, 200)}`));
        }
        if (res.id !== id && res.id !== null) continue;
        if (res.ok === true && 'event' in res) {
          if (onEvent) {
            clearTimeout(timer); // the daemon answers; a stream may legitimately stay quiet afterwards
            try {
              onEvent(res.event);
            } catch (e) {
              return finish(e instanceof Error ? e : new BugError(String(e)));
            }
          }
          continue;
        }
        if (res.ok === true) return finish(undefined, res.result);
        const body = res.error as ControlErrorBody | undefined;
        if (!body || typeof body.message !== 'string') {
          return finish(new BugError(`the daemon sent a malformed error response: ${line.slice(0, 200)}`));
        }
        return finish(errorFromBody(body));
      }
    });
  });
}

function connectError(socketPath: string, home: string, e: NodeJS.ErrnoException): Error {
  switch (e.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return new UserError(`no tandem daemon is running for TANDEM_HOME=${home} (socket ${socketPath}). ` +
        `Start it with \`tandem daemon\` (or \`systemctl start tandem\`).`);
    case 'EACCES':
    case 'EPERM':
      return new UserError(`permission denied on the control socket ${socketPath}. Run the command as root (sudo).`);
    case 'ENOTSOCK':
      return new UserError(`${socketPath} is not a socket. Check TANDEM_HOME, then restart the daemon.`);
    default:
      return new UserError(`cannot reach the tandem daemon on ${socketPath}: ${e.message}. Check that it runs ` +
        `(\`systemctl status tandem\`).`);
  }
}

/**
 * The wire between the daemon (`HostedReplicator`, client.ts) and a module's replication host (server.ts): a unix
 * socket in the run dir (`hostPaths.socket`, mode 0600), newline-delimited JSON, one object per line, UTF-8, at most
 * MAX_HOST_LINE bytes a line.
 *
 *   daemon → host   {"t":"req","id":1,"op":"set-role","args":{…}}        a request; every request gets one response
 *   host → daemon   {"t":"res","id":1,"ok":true,"result":…}               its answer
 *                   {"t":"res","id":1,"ok":false,"error":{"kind":…}}      or its error (kinds of src/errors.ts)
 *                   {"t":"ev","ev":"replication-failed","reason":"…"}     an event (HostEvent), unsolicited
 *
 * The first request of a connection is `hello` with HOST_PROTOCOL_VERSION; the host refuses any other first request
 * and any other version (the daemon was upgraded while an old host kept serving: see client.ts). Requests are
 * handled in arrival order but answered as they finish (a `reintegrate` is answered when the copy is done, while
 * `direct` and `copy-answer` for it are answered at once). A line that cannot be read ends the connection.
 * This is an internal wire (one binary on both ends); it changes with HOST_PROTOCOL_VERSION.
 */
import type { ControlErrorBody } from '../../daemon/control.js';
import type {
  FilesRole, PrimaryFiles, ReintegrateRequest, ReintegrationProgress, ReplicationDirective, ReplicationStatus,
} from '../types.js';

export const HOST_PROTOCOL_VERSION = 1;
export const MAX_HOST_LINE = 1024 * 1024;

/** What `tandem status` shows of the replicated directories; pushed by the host whenever it changes. */
export interface HostSnapshot {
  progress: ReintegrationProgress | null;
  alarm: string | null;
  status: ReplicationStatus | null;
}

/** A reintegration request as it crosses the socket: the signal becomes `abort-reintegration`, beginCopy an event. */
export type WireReintegrateRequest = Omit<ReintegrateRequest, 'signal' | 'beginCopy'>;

export interface HelloResult {
  version: number;
  /** the host's pid (compared with the pid file by the daemon) */
  pid: number;
  module: string;
  home: string;
  /** the layout the replicated directories are in now */
  role: FilesRole;
  /** a write the host could not replicate and that still waits for the engine's `outdated` (reported again here,
   *  since the daemon that got the event may have died before persisting anything) */
  failed: string | null;
  /** a change the SECOND acknowledged and could not apply, not yet reported to a daemon */
  behind: string | null;
  snapshot: HostSnapshot;
}

/** The requests: op → arguments and result. One map for both ends. */
export interface HostOps {
  hello: { args: { version: number; daemonPid: number }; result: HelloResult };
  'set-role': { args: { role: FilesRole; primary?: PrimaryFiles }; result: null };
  direct: { args: { directive: ReplicationDirective }; result: null };
  /** resolves when the reintegration `rid` finished (see Replicator.reintegrate) */
  reintegrate: { args: { rid: number; req: WireReintegrateRequest }; result: null };
  /** the daemon's answer to the event `begin-copy` of reintegration `rid`: the engine persisted (ok) or abandoned */
  'copy-answer': { args: { rid: number; ok: boolean }; result: null };
  'abort-reintegration': { args: { rid: number }; result: null };
  /** the snapshot now (`tandem status` asks for it, so that it shows what holds at that moment) */
  snapshot: { args: Record<string, never>; result: HostSnapshot };
  /** leave every layout and exit (module stopped, or its daemon told to end it) */
  shutdown: { args: Record<string, never>; result: null };
}
export type HostOp = keyof HostOps;

export type HostEvent =
  | { ev: 'replication-failed'; reason: string }
  | { ev: 'copy-behind'; reason: string }
  | { ev: 'snapshot'; snapshot: HostSnapshot }
  /** reintegration `rid` is about to change the local copy: the daemon answers with `copy-answer` */
  | { ev: 'begin-copy'; rid: number };

export type HostRequest = { [K in HostOp]: { t: 'req'; id: number; op: K; args: HostOps[K]['args'] } }[HostOp];
export type HostResponse =
  | { t: 'res'; id: number; ok: true; result: unknown }
  | { t: 'res'; id: number; ok: false; error: ControlErrorBody };
export type HostToDaemon = HostResponse | ({ t: 'ev' } & HostEvent);

/** A line of the host wire that cannot be read: the connection is ended with this message. */
export class HostProtocolError extends Error {
  override readonly name = 'HostProtocolError';
}

export function encodeLine(m: HostRequest | HostToDaemon): string {
  return `${JSON.stringify(m)}\n`;
}

const OPS: ReadonlySet<string> = new Set<HostOp>(['hello', 'set-role', 'direct', 'reintegrate', 'copy-answer', 'abort-reintegration', 'snapshot', 'shutdown']);
const ROLES: ReadonlySet<string> = new Set<FilesRole>(['primary', 'secondary', 'off']);

function parseObject(line: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new HostProtocolError(`not JSON (${(e as Error).message}): ${line.slice(0, 80)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HostProtocolError(`not a JSON object: ${line.slice(0, 80)}`);
  return v as Record<string, unknown>;
}

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads a daemon → host line. Throws HostProtocolError naming what is wrong. */
export function decodeRequest(line: string): HostRequest {
  const m = parseObject(line);
  if (m.t !== 'req') throw new HostProtocolError(`expected a request (t "req"), got t ${JSON.stringify(m.t)}`);
  if (!isId(m.id)) throw new HostProtocolError(`request without a numeric id: ${line.slice(0, 80)}`);
  if (typeof m.op !== 'string' || !OPS.has(m.op)) throw new HostProtocolError(`unknown request op ${JSON.stringify(m.op)}`);
  const a = m.args;
  if (!isObj(a)) throw new HostProtocolError(`request ${m.op} without an args object`);
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new HostProtocolError(`request ${String(m.op)}: ${what}`);
  };
  switch (m.op as HostOp) {
    case 'hello': need(isId(a.version) && isId(a.daemonPid), 'needs numeric version and daemonPid'); break;
    case 'set-role': need(typeof a.role === 'string' && ROLES.has(a.role) && (a.primary === undefined || isObj(a.primary)), 'needs role primary|secondary|off'); break;
    case 'direct': need(isObj(a.directive) && typeof a.directive.kind === 'string', 'needs a directive with a kind'); break;
    case 'reintegrate': need(isId(a.rid) && isObj(a.req) && typeof a.req.from === 'string' && typeof a.req.module === 'string', 'needs rid and req {module, from, …}'); break;
    case 'copy-answer': need(isId(a.rid) && typeof a.ok === 'boolean', 'needs rid and ok'); break;
    case 'abort-reintegration': need(isId(a.rid), 'needs rid'); break;
    case 'snapshot': case 'shutdown': break;
  }
  return m as unknown as HostRequest;
}

/** Reads a host → daemon line. Throws HostProtocolError naming what is wrong. */
export function decodeFromHost(line: string): HostToDaemon {
  const m = parseObject(line);
  if (m.t === 'res') {
    if (!isId(m.id) || typeof m.ok !== 'boolean') throw new HostProtocolError(`response without id or ok: ${line.slice(0, 80)}`);
    if (!m.ok && (!isObj(m.error) || typeof m.error.message !== 'string')) throw new HostProtocolError(`error response without an error: ${line.slice(0, 80)}`);
    return m as unknown as HostResponse;
  }
  if (m.t === 'ev') {
    switch (m.ev) {
      case 'replication-failed':
      case 'copy-behind':
        if (typeof m.reason !== 'string') throw new HostProtocolError(`event ${m.ev} without a reason`);
        break;
      case 'snapshot':
        if (!isObj(m.snapshot)) throw new HostProtocolError('event snapshot without a snapshot');
        break;
      case 'begin-copy':
        if (!isId(m.rid)) throw new HostProtocolError('event begin-copy without a rid');
        break;
      default:
        throw new HostProtocolError(`unknown event ${JSON.stringify(m.ev)}`);
    }
    return m as unknown as HostToDaemon;
  }
  throw new HostProtocolError(`expected a response or an event (t "res" or "ev"), got t ${JSON.stringify(m.t)}`);
}

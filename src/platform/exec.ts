import { execa } from 'execa';
import { ExternalError } from '../errors.js';

/**
 * The one way platform adapters run an outside command and capture its output.
 *
 * Contract:
 * - Asynchronous only. The daemon may serve a FUSE mount, and a synchronous spawn from the serving process deadlocks
 *   (platform-findings §1), so nothing here (or anywhere in tandem) uses spawnSync/execSync.
 * - A non-zero exit throws `ExternalError(command line, exit code, stderr)`, unless `reject: false`, in which case
 *   the exit code is returned for the caller to judge.
 * - Failures that are not an exit code always throw `ExternalError` with `exitCode` null, even with `reject: false`:
 *   the command could not be started (not installed), it ran past `timeoutMs` (it is killed with SIGTERM, then
 *   SIGKILL), it was killed by a signal, or `signal` was aborted.
 * - stdin is closed, or carries `input` when given; stdout and stderr are captured as text (final newline stripped).
 */
export interface RunOptions {
  /** false: return a non-zero exit code instead of throwing. Default true. */
  reject?: boolean;
  /** kill the command after this many milliseconds. Default: no limit. */
  timeoutMs?: number;
  /** aborting it kills the command and makes `run` throw */
  signal?: AbortSignal;
  /** added to process.env */
  env?: Record<string, string>;
  /** written to the command's stdin, which is then closed (e.g. a ruleset for `nft -f -`) */
  input?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export type RunFn = (cmd: string, args: string[], opts?: RunOptions) => Promise<RunResult>;

export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const command = formatCommand(cmd, args);
  const r = await execa(cmd, args, {
    reject: false,
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
    timeout: opts.timeoutMs,
    cancelSignal: opts.signal,
    forceKillAfterDelay: 2000,
    env: opts.env,
    extendEnv: true,
  });
  const stdout = String(r.stdout ?? '');
  const stderr = String(r.stderr ?? '');
  if (r.timedOut) throw new ExternalError(command, null, stderr, `command timed out after ${opts.timeoutMs} ms: ${command}`);
  if (r.isCanceled) throw new ExternalError(command, null, stderr, `command canceled: ${command}`);
  if (typeof r.exitCode !== 'number') {
    const why = r.signal ? `killed by ${r.signal}` : r.originalMessage ?? r.message;
    throw new ExternalError(command, null, stderr, `command failed (${why}): ${command}`);
  }
  if (r.exitCode !== 0 && opts.reject !== false) throw new ExternalError(command, r.exitCode, stderr);
  return { stdout, stderr, code: r.exitCode };
}

/** A command line as a user would type it, for error messages and logs. */
export function formatCommand(cmd: string, args: string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

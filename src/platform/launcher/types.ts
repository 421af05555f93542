/**
 * Launcher: runs a long-lived user executable (a custom checker's program) and stops it. Real: ./linux.ts; fake:
 * ./fake.ts.
 *
 * Contract:
 * - `launch` starts `exec` with `args` as the leader of a new process group, with exactly `env` as its environment
 *   (nothing of the caller's is added), stdin closed, and stdout and stderr appended to `logFile` (created with its
 *   directory if missing). It resolves once the process runs; it rejects with UserError when the process cannot be
 *   started (no such file, not executable, bad `#!` interpreter) or the log cannot be opened.
 * - `exited` resolves when the leader has exited, never rejects.
 * - `stop(graceMs)` ends the whole group: SIGTERM to the group, SIGKILL to the group when the leader is still
 *   running after `graceMs`, and SIGKILL to whatever is left in the group once the leader is gone. It resolves with
 *   the leader's exit. Idempotent; after the leader exited by itself it only clears what is left of the group.
 */
export interface Launcher {
  launch(req: LaunchRequest): Promise<Launched>;
}

export interface LaunchRequest {
  exec: string;
  args: string[];
  env: Record<string, string>;
  logFile: string;
  /** names the process in the log's framing lines, e.g. `custom.db` */
  title: string;
  /** working directory; default the caller's */
  cwd?: string;
}

export interface Launched {
  readonly pid: number;
  readonly exited: Promise<Exit>;
  stop(graceMs?: number): Promise<Exit>;
}

export interface Exit {
  /** exit code, or null when ended by a signal */
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** How long `stop` waits after SIGTERM before SIGKILL, unless told. */
export const DEFAULT_STOP_GRACE_MS = 5000;

/**
 * ScriptRunner: runs a module's user scripts (`modules/<name>/bin/<script>`). Real: ./linux.ts; fake: ./fake.ts.
 *
 * Contract:
 * - A missing script is a success with `missing: true` (every script is optional).
 * - Arguments are (current state, next state, action) as SafeKit does; stop scripts may get `force` first.
 * - stdout and stderr go to the module's log file (appended; the runner frames them with timestamped started/exited lines)
 *   and never to a pipe the runner waits on: a start script may leave the application running in the background and
 *   the runner returns when the script itself exits.
 * - On timeout the script's process group is killed with SIGKILL and `timedOut` is true.
 */
export type ScriptName = 'prestart' | 'start_prim' | 'stop_prim' | 'start_second' | 'stop_second' | 'start_both' | 'stop_both' | 'poststop';

export interface ScriptRequest {
  module: string;
  script: ScriptName;
  args: string[];
  /** extra environment (TANDEM_MODULE, TANDEM_NODE, TANDEM_HOME, user vars) */
  env: Record<string, string>;
  timeoutMs: number;
}

export interface ScriptResult {
  ok: boolean;
  missing: boolean;
  timedOut: boolean;
  /** exit code, or null when killed by a signal */
  code: number | null;
  durationMs: number;
}

export interface ScriptRunner {
  run(req: ScriptRequest): Promise<ScriptResult>;
}

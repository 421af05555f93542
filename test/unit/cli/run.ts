import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout and its node entry, for tests that run the real CLI. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
export const BIN = path.join(ROOT, 'bin', 'tandem');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment a CLI under test sees: ours without TANDEM_* (no stray TANDEM_MODULE), no colours, plus `env`. */
export function cliEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TANDEM_')));
  return { ...base, FORCE_COLOR: '0', NO_COLOR: '1', ...env };
}

/** Runs `cmd …args` to completion, collecting its output (killed after 60 s); `input` is written to its stdin. */
export function runProcess(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: o.cwd ?? ROOT, env: o.env ?? cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    child.stdin.end(o.input ?? '');
  });
}

/** Runs `bin/tandem …args` with node (cliEnv(env), cwd the checkout unless given). */
export function runTandem(args: string[], o: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return runProcess(process.execPath, [BIN, ...args], { cwd: o.cwd ?? ROOT, env: cliEnv(o.env) });
}

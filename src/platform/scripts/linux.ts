import { spawn } from 'node:child_process';
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { untrusted } from '../../config/module-files.js';
import { UserError } from '../../errors.js';
import type { ScriptRequest, ScriptResult, ScriptRunner } from './types.js';

export interface LinuxScriptRunnerOptions {
  /** directory holding a module's scripts, e.g. <home>/modules/<module>/bin */
  scriptsDir: (module: string) => string;
  /** the module's log file; created (with its directory) if missing, always appended to */
  logFile: (module: string) => string;
}

/**
 * ScriptRunner that runs `<scriptsDir(module)>/<script> args…` as a child process.
 *
 * - Missing script → `{ ok: true, missing: true }` without touching the log.
 * - A script without the execute bit still runs, through the interpreter named on its `#!` line or `/bin/sh` when it
 *   has none, and a `warning: … is not executable` line goes to the module log: scripts copied from an archive or
 *   another OS often lose the bit, and refusing them would turn a cosmetic problem into a failed start.
 * - A script that anyone but root (or the user tandem runs as) could change is refused before it runs (UserError,
 *   and a line in the log): owned by another user, group- or world-writable, in such a directory, or a symlink.
 * - A path that is not a regular file or cannot be inspected, or a script that cannot be started at all (bad `#!`
 *   interpreter), throws UserError (logging the reason when the log is open): that is a packaging mistake, not an
 *   outcome of the script.
 * - Output: the module log is opened with O_APPEND (mode 0600: script output is not for other users) and that fd is
 *   the child's stdout and stderr, so its output lands in the log as it is written and a server the script leaves in
 *   the background keeps writing there. A log that cannot be opened or written never fails the run: the output then
 *   goes nowhere. Lines
 *   `<ISO time> script <name> <args> started` and `… exited <code|signal> in <ms> ms` frame it. Script output
 *   itself is not prefixed line by line (that would need a pipe the runner must then drain).
 * - The result comes on the child's 'exit' event, never on pipes closing, so a background server does not delay it.
 * - The child is spawned `detached` (own process group). On timeout the whole group gets SIGKILL and `timedOut` is
 *   true; on a normal exit the group is left alone, so the application started by a start script keeps running.
 * - Environment: process.env, then req.env on top.
 */
export class LinuxScriptRunner implements ScriptRunner {
  constructor(private readonly opts: LinuxScriptRunnerOptions) {}

  async run(req: ScriptRequest): Promise<ScriptResult> {
    const file = path.join(this.opts.scriptsDir(req.module), req.script);
    let stat;
    try {
      stat = await fs.lstat(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        return { ok: true, missing: true, timedOut: false, code: 0, durationMs: 0 };
      }
      throw new UserError(`cannot read ${file}: ${(e as Error).message}; check the module's bin directory`);
    }

    // The log is best effort: a log that cannot be opened or written (full disk, EIO) never fails the script run
    // (a failover must not depend on the log's disk); the script's output then goes nowhere.
    const logPath = this.opts.logFile(req.module);
    const log = await openLog(logPath);
    const line = async (text: string) => {
      await log?.appendFile(`${new Date().toISOString()} ${text}\n`).catch(() => {});
    };
    try {
      if (!stat.isFile()) {
        await line(`script ${req.script} error: ${file} is not a regular file`);
        throw new UserError(`${file} is not a regular file${stat.isSymbolicLink() ? ' (a symlink)' : ''}; module scripts must be files`);
      }
      // checked again at each run (config/module-files.ts): a script others can change would run their code as root
      const dirStat = await fs.lstat(path.dirname(file));
      const why = untrusted(stat) ?? untrusted(dirStat);
      if (why) {
        const what = untrusted(stat) ? file : path.dirname(file);
        await line(`script ${req.script} refused: ${what} ${why}`);
        throw new UserError(`${what} ${why}: tandem does not run a script that anyone but root can change. ` +
          `Run \`chown root:root ${what} && chmod go-w ${what}\`, then \`tandem config -m ${req.module}\`.`);
      }
      let argv = [file, ...req.args];
      if (!(await isExecutable(file))) {
        const interp = await shebang(file);
        await line(`warning: ${file} is not executable; running it with ${interp.join(' ')} (chmod +x it to silence this)`);
        argv = [...interp, ...argv];
      }
      const title = ['script', req.script, ...req.args].join(' ');
      await line(`${title} started`);
      const started = performance.now();
      const { code, signal, timedOut, spawnError } = await spawnAndWait(argv, log?.fd ?? 'ignore', { ...process.env, ...req.env }, req.timeoutMs);
      const durationMs = Math.round(performance.now() - started);
      if (spawnError) {
        await line(`${title} could not start: ${spawnError.message}`);
        throw new UserError(`${file} could not be started (${spawnError.message}); check its #! line`);
      }
      if (timedOut) await line(`${title} timed out after ${req.timeoutMs} ms; killed its process group`);
      await line(`${title} exited ${code ?? signal} in ${durationMs} ms`);
      return { ok: code === 0 && !timedOut, missing: false, timedOut, code, durationMs };
    } finally {
      await log?.close().catch(() => {});
    }
  }
}

/** The module log opened for appending, mode 0600 (script output may hold secrets), or null when it cannot be. */
async function openLog(file: string): Promise<fs.FileHandle | null> {
  try {
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const fh = await fs.open(file, 'a', 0o600);
    const st = await fh.stat();
    if (st.isFile() && (st.mode & 0o077) !== 0) await fh.chmod(0o600);
    return fh;
  } catch {
    return null;
  }
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  spawnError?: Error;
}

function spawnAndWait(argv: string[], logFd: number | 'ignore', env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', logFd, logFd], env });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL'); // no group (already gone, or never formed): at least the script itself
      }
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, timedOut: false, spawnError: err });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut });
    });
  });
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await fs.access(file, fsc.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The interpreter of a `#!` line split as the kernel does (program and at most one argument), else /bin/sh. */
async function shebang(file: string): Promise<string[]> {
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(256);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const first = buf.subarray(0, bytesRead).toString('utf8').split('\n')[0] ?? '';
    if (!first.startsWith('#!')) return ['/bin/sh'];
    const m = /^#!\s*(\S+)(?:\s+(.*\S))?/.exec(first);
    if (!m) return ['/bin/sh'];
    return m[2] ? [m[1]!, m[2]] : [m[1]!];
  } finally {
    await fh.close();
  }
}

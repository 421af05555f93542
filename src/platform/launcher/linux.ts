import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { formatCommand } from '../exec.js';
import { DEFAULT_STOP_GRACE_MS, type Exit, type LaunchRequest, type Launched, type Launcher } from './types.js';

/**
 * Launcher over child_process.spawn with `detached: true` (a new session, so a new process group whose id is the
 * child's pid). The log is opened with O_APPEND and its descriptor is the child's stdout and stderr, so output lands
 * as it is written and nothing has to drain a pipe; lines `<ISO time> <title> started: <command> (pid N)` and
 * `… exited <code|signal> after <ms> ms` frame each run. The grace timer of `stop` is a real timer (adapters own
 * their deadlines).
 *
 * Signalling the group after its leader is gone is safe against pid reuse: the kernel does not hand out a number
 * still in use as a process group id, and once the group is empty the signal fails with ESRCH, which is ignored.
 */
export class LinuxLauncher implements Launcher {
  async launch(req: LaunchRequest): Promise<Launched> {
    const command = formatCommand(req.exec, req.args);
    let log: fs.FileHandle;
    try {
      await fs.mkdir(path.dirname(req.logFile), { recursive: true });
      log = await fs.open(req.logFile, 'a');
    } catch (e) {
      throw new UserError(`cannot open ${req.logFile} for ${req.title}: ${(e as Error).message}; check the module's log directory`);
    }
    const line = (text: string) => log.appendFile(`${new Date().toISOString()} ${req.title} ${text}\n`).catch(() => {});
    const child = spawn(req.exec, req.args, { detached: true, stdio: ['ignore', log.fd, log.fd], env: req.env, cwd: req.cwd });
    const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const spawnError = await new Promise<Error | null>((resolve) => {
      child.once('spawn', () => resolve(null));
      child.once('error', resolve);
    });
    child.on('error', () => {}); // a later kill failure must not crash the daemon
    if (spawnError) {
      await line(`could not start: ${command}: ${spawnError.message}`);
      await log.close();
      throw new UserError(`${req.title}: cannot start ${command}: ${spawnError.message}; check that the file exists, is executable and its #! line`);
    }
    const started = performance.now();
    const pid = child.pid!;
    await line(`started: ${command} (pid ${pid})`);
    const done = exited.then(async (e) => {
      await line(`exited ${e.code ?? e.signal} after ${Math.round(performance.now() - started)} ms`);
      await log.close();
      return e;
    });
    return new LinuxLaunched(pid, done);
  }
}

class LinuxLaunched implements Launched {
  private stopping: Promise<Exit> | null = null;
  private leaderGone = false;

  constructor(readonly pid: number, readonly exited: Promise<Exit>) {
    void exited.then(() => { this.leaderGone = true; });
  }

  stop(graceMs = DEFAULT_STOP_GRACE_MS): Promise<Exit> {
    this.stopping ??= (async () => {
      if (!this.leaderGone) {
        this.signalGroup('SIGTERM');
        const timer = setTimeout(() => this.signalGroup('SIGKILL'), Math.max(0, graceMs));
        await this.exited;
        clearTimeout(timer);
      }
      this.signalGroup('SIGKILL');
      return this.exited;
    })();
    return this.stopping;
  }

  private signalGroup(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch {
      // ESRCH: the group is empty
    }
  }
}

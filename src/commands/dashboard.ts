import os from 'node:os';
import { Flags } from '@oclif/core';
import { moduleFlag, TandemCommand } from '../cli/base.js';
import { parseDuration } from '../config/duration.js';
import { UserError } from '../errors.js';
import { dashboardSource } from '../services/dashboard.js';
import { dashboardFrame, type Line } from '../ui/model.js';
import { frameAnsi } from '../ui/plain.js';
import { clockOf, StatusStore, type Snapshot } from '../ui/store.js';
import { claimTerminal } from '../ui/terminal.js';

/** How often the terminal view polls the daemon: a change shows within this plus one status request. */
const TTY_POLL_MS = 400;

export default class Dashboard extends TandemCommand {
  static override summary = 'A live view of every module on every node this node knows, with keys to act on them.';
  static override description = [
    'Full screen in a terminal: each module\'s state on each node in SafeKit\'s colours (STOP red, WAIT orange while transient and red when settled, ALONE/PRIM/SECOND/UP orange while transient and green when ready; a transient state ends with "…"), then for the selected module its peer and heartbeats per LAN, virtual IP holder, resync progress, replication, resources, farm bucket shares and alarms, and a log of the changes seen. It polls the daemon every ' + TTY_POLL_MS + ' ms.',
    'Keys: ↑/↓ select a module; s swap, t stop, r start, p prim, e second first say what will happen (y runs it on this node, as the command of the same name would; n or Esc cancels); q quits.',
    'Off a terminal (a pipe, a file, ssh without -t) it prints the status as plain text every --interval; --once prints one frame and exits.',
  ].join('\n\n');
  static override examples = ['<%= config.bin %> dashboard', '<%= config.bin %> dashboard --once', '<%= config.bin %> dashboard --interval 5s | tee status.log'];
  static override flags = {
    module: moduleFlag,
    once: Flags.boolean({ description: 'print one frame as text and exit' }),
    interval: Flags.string({ description: 'off a terminal: print a frame this often', default: '2s', helpValue: 'DURATION' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Dashboard);
    const intervalMs = parseDuration(flags.interval, '--interval');
    if (intervalMs < 100) throw new UserError(`--interval ${flags.interval} is too short to read.`, 'give 100ms or more, e.g. --interval 2s');
    const src = dashboardSource(this.home(), flags.module);
    const store = new StatusStore(src.status);
    if (process.stdout.isTTY && process.stdin.isTTY && !flags.once) {
      claimTerminal(process.env, (env) => process.stdout.getColorDepth(env));
      const { runDashboard } = await import('../ui/dashboard.js');
      const signal = await runDashboard(store, src.act, TTY_POLL_MS);
      // ended by a signal: the shell's convention, 128 + its number
      if (signal) process.exitCode = 128 + os.constants.signals[signal];
      return;
    }
    const first = await store.poll();
    if (store.lastFailure) throw store.lastFailure;
    if (flags.once) return void this.log(frameAnsi(plainFrame(first, first.events)));
    await this.printEvery(store, intervalMs);
  }

  /** Prints a frame now and every `intervalMs` with the events seen since the last one, until interrupted. */
  private async printEvery(store: StatusStore, intervalMs: number): Promise<never> {
    // the reader went away (`| head`): stop quietly, as other line-printing tools do
    process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(0); throw e; });
    let shown = 0;
    for (;;) {
      const s = store.snapshot;
      const fresh = s.events.slice(Math.max(0, s.events.length - (s.eventCount - shown)));
      shown = s.eventCount;
      this.log(`${frameAnsi(plainFrame(s, fresh))}\n`);
      await new Promise((r) => setTimeout(r, intervalMs));
      await store.poll();
    }
  }
}

function plainFrame(s: Snapshot, events: string[]): Line[] {
  return dashboardFrame({
    status: s.status, error: s.error, selected: null, width: Math.max(60, Number(process.env.COLUMNS) || 100), height: null,
    events, prompt: null, message: null, clock: clockOf(s.at),
  });
}

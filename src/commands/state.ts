import { Flags } from '@oclif/core';
import { moduleFlag, TandemCommand } from '../cli/base.js';
import type { StatusView } from '../daemon/views.js';
import { STATE_EXIT_CODE, type ModState } from '../engine/mirror/types.js';
import { FARM_STATE_EXIT_CODE, type FarmModState } from '../engine/farm/types.js';
import { daemonRequest } from '../services/daemon-client.js';
import { paragraphs } from '../cli/paragraphs.js';

export default class State extends TandemCommand {
  static override summary = "Print a module's state; the exit code is the state.";
  static override description = paragraphs(`Exit codes (as SafeKit): STOP 0, WAIT 1, ALONE 2, PRIM 3, SECOND 4; farm modules: STOP 0, WAIT 1, UP 2. Errors exit 10 or more.

"(transient)" follows the state while scripts or reintegration run.`);
  static override examples = ['<%= config.bin %> state -m demo', 'tandem state -m demo -q; echo $?', 'tandem state -m demo --json'];
  static override flags = {
    module: moduleFlag,
    quiet: Flags.boolean({ char: 'q', description: 'print nothing, only set the exit code', exclusive: ['json'] }),
    json: Flags.boolean({ description: 'machine-readable output: {"module","mode","state","ready","exitCode"}; the exit code is still the state' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(State);
    const m = this.needModule(flags.module);
    const v = (await daemonRequest(this.home(), 'status', m)) as StatusView;
    const mod: { state: ModState | FarmModState; ready: boolean } = v.modules[0] ?? v.farms[0]!;
    const exitCode = mod.state === 'UP' ? FARM_STATE_EXIT_CODE.UP : STATE_EXIT_CODE[mod.state];
    if (flags.json) this.log(JSON.stringify({ module: m, mode: v.modules[0] ? 'mirror' : 'farm', state: mod.state, ready: mod.ready, exitCode }, null, 2));
    else if (!flags.quiet) this.log(`${mod.state}${mod.ready ? '' : ' (transient)'}`);
    this.exit(exitCode);
  }
}

import { moduleFlag, TandemCommand } from '../cli/base.js';
import { runReplicationHost } from '../replication/host/main.js';

/** Internal: the per-module replication host the daemon starts (src/replication/host/main.ts). Not for users. */
export default class ReplicationHostCommand extends TandemCommand {
  static override hidden = true;
  static override summary = 'Internal: serve a module\'s replicated directories for the daemon (started by the daemon).';
  static override flags = { module: moduleFlag };

  async run(): Promise<void> {
    const { flags } = await this.parse(ReplicationHostCommand);
    await runReplicationHost(this.home(), this.needModule(flags.module), process.env);
    process.exit(0);
  }
}

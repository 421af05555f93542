import { Args, Flags } from '@oclif/core';
import { moduleFlag, TandemCommand } from '../cli/base.js';
import type { StatusView } from '../daemon/views.js';
import { run } from '../platform/exec.js';
import { daemonRequestIfRunning } from '../services/daemon-client.js';
import { formatSnapshot, takeSnapshot } from '../services/snapshot.js';

export default class Snapshot extends TandemCommand {
  static override summary = 'Write one .tar.gz for support: logs, configs, state, status, network, versions (never the cluster key).';
  static override description = [
    "Collects the daemon and module logs, cluster.xml, each module's userconfig.xml and scripts, the state files, `status --json` " +
      'with resources and replication, `ip addr`, `ip route`, `nft list ruleset`, the mounts, the kernel log\'s tail and the versions.',
    'A command that fails is recorded in the archive and does not stop the snapshot. The cluster key is never included. ' +
      "With -m: only that module's files, plus the node-wide ones. Never replaces an existing file.",
  ].join('\n\n');
  static override examples = ['<%= config.bin %> snapshot', '<%= config.bin %> snapshot -m demo /tmp/demo-support.tar.gz', '<%= config.bin %> snapshot --json'];
  static override args = { file: Args.string({ description: 'output file (default ./tandem-snapshot-<node>-<UTC time>.tar.gz)' }) };
  static override flags = { module: moduleFlag, json: Flags.boolean({ description: 'machine-readable output: members, sizes, failed commands, output path' }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Snapshot);
    const home = this.home();
    const r = await takeSnapshot(home, {
      run,
      status: async (m) => (await daemonRequestIfRunning(home, 'status', m)) as StatusView | null,
    }, { module: flags.module, file: args.file, tandemVersion: this.config.version });
    this.log(flags.json ? JSON.stringify(r, null, 2) : formatSnapshot(r));
  }
}

import { Args } from '@oclif/core';
import { TandemCommand } from '../../cli/base.js';
import { labFlag } from '../../cli/lab-flag.js';
import { findLab } from '../../services/lab.js';

export default class LabCut extends TandemCommand {
  static override summary = 'Cut a LAN (default, replication, or all) for one host or for every host: nothing passes, links stay up.';
  static override examples = ['<%= config.bin %> lab cut default node2', '<%= config.bin %> lab cut all node2'];
  static override flags = { lab: labFlag };
  static override args = {
    lan: Args.string({ required: true, description: 'default, replication or all' }),
    host: Args.string({ description: 'one host (default: every host)' }),
  };

  async run(): Promise<void> {
    const { flags, args } = await this.parse(LabCut);
    const lab = await findLab(flags.lab);
    const lans = args.lan === 'all' ? lab.spec.lans.map((l) => l.name) : [args.lan];
    for (const l of lans) await lab.cut(l, args.host);
    this.log(`cut ${lans.join(', ')} for ${args.host ?? 'every host'}; undo with \`tandem lab heal\``);
  }
}

import { Args } from '@oclif/core';
import { TandemCommand } from '../../cli/base.js';
import { labFlag } from '../../cli/lab-flag.js';
import { findLab } from '../../services/lab.js';
import { paragraphs } from '../../cli/paragraphs.js';

export default class LabUnplug extends TandemCommand {
  static override summary = "Pull a node's cable on one LAN: its interface loses carrier (the interface checker sees it).";
  static override description = paragraphs('Unlike `lab cut` (a network failure: nothing passes, the link stays up), the node\'s interface goes NO-CARRIER, as with a\ndead cable or switch port. Undo with `tandem lab plug` or `tandem lab heal`.');
  static override examples = ['<%= config.bin %> lab unplug default node1'];
  static override flags = { lab: labFlag };
  static override args = {
    lan: Args.string({ required: true, description: 'default or replication' }),
    host: Args.string({ required: true, description: 'the host' }),
  };

  async run(): Promise<void> {
    const { flags, args } = await this.parse(LabUnplug);
    await (await findLab(flags.lab)).unplug(args.lan, args.host);
    this.log(`${args.host}: cable on ${args.lan} pulled; undo with \`tandem lab plug ${args.lan} ${args.host}\``);
  }
}

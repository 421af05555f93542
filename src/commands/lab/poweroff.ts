import { Args } from '@oclif/core';
import { TandemCommand } from '../../cli/base.js';
import { labFlag } from '../../cli/lab-flag.js';
import { findLab } from '../../services/lab.js';

export default class LabPoweroff extends TandemCommand {
  static override summary = 'Pull the plug of a lab host: every process killed (SIGKILL), links down; its disk is kept.';
  static override examples = ['<%= config.bin %> lab poweroff node1'];
  static override flags = { lab: labFlag };
  static override args = { host: Args.string({ required: true, description: 'node1, node2, client or witness' }) };

  async run(): Promise<void> {
    const { flags, args } = await this.parse(LabPoweroff);
    await (await findLab(flags.lab)).poweroff(args.host);
    this.log(`${args.host} powered off`);
  }
}

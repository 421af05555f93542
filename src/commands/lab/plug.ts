import { Args } from '@oclif/core';
import { TandemCommand } from '../../cli/base.js';
import { labFlag } from '../../cli/lab-flag.js';
import { findLab } from '../../services/lab.js';

export default class LabPlug extends TandemCommand {
  static override summary = "Plug a node's cable back in on one LAN (undoes `tandem lab unplug`).";
  static override examples = ['<%= config.bin %> lab plug default node1'];
  static override flags = { lab: labFlag };
  static override args = {
    lan: Args.string({ required: true, description: 'default or replication' }),
    host: Args.string({ required: true, description: 'the host' }),
  };

  async run(): Promise<void> {
    const { flags, args } = await this.parse(LabPlug);
    await (await findLab(flags.lab)).plug(args.lan, args.host);
    this.log(`${args.host}: cable on ${args.lan} plugged back in`);
  }
}

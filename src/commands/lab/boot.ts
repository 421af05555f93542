import { Args } from '@oclif/core';
import { TandemCommand } from '../../cli/base.js';
import { labFlag } from '../../cli/lab-flag.js';
import { findLab } from '../../services/lab.js';

export default class LabBoot extends TandemCommand {
  static override summary = 'Power a lab host on: base network restored, links up, daemon started.';
  static override examples = ['<%= config.bin %> lab boot node1'];
  static override flags = { lab: labFlag };
  static override args = { host: Args.string({ required: true, description: 'node1, node2, client or witness' }) };

  async run(): Promise<void> {
    const { flags, args } = await this.parse(LabBoot);
    await (await findLab(flags.lab)).boot(args.host);
    this.log(`${args.host} booted`);
  }
}

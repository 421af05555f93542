import { Flags } from '@oclif/core';
import { TandemCommand } from '../../cli/base.js';
import { labFlag } from '../../cli/lab-flag.js';
import { downAll } from '../../lab/lab.js';
import { findLab } from '../../services/lab.js';

export default class LabDown extends TandemCommand {
  static override summary = 'Tear a lab down: processes, namespaces, mounts and files.';
  static override examples = ['<%= config.bin %> lab down', '<%= config.bin %> lab down --all'];
  static override flags = { lab: labFlag, all: Flags.boolean({ description: 'every lab on this machine, and leftovers of crashed ones' }) };

  async run(): Promise<void> {
    const { flags } = await this.parse(LabDown);
    const reports = flags.all ? await downAll() : [await (await findLab(flags.lab)).down()];
    for (const r of reports) this.log(`lab ${r.prefix} removed${r.problems.length ? `, with problems:\n  ${r.problems.join('\n  ')}` : ''}`);
    if (reports.length === 0) this.log('no lab to remove');
  }
}

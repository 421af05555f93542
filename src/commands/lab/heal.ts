import { TandemCommand } from '../../cli/base.js';
import { labFlag } from '../../cli/lab-flag.js';
import { findLab } from '../../services/lab.js';

export default class LabHeal extends TandemCommand {
  static override summary = 'Plug every cut LAN back.';
  static override examples = ['<%= config.bin %> lab heal'];
  static override flags = { lab: labFlag };

  async run(): Promise<void> {
    const { flags } = await this.parse(LabHeal);
    await (await findLab(flags.lab)).heal();
    this.log('every LAN link is up');
  }
}

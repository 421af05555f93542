import { TandemCommand } from '../../cli/base.js';
import { labFlag } from '../../cli/lab-flag.js';
import { findLab, labStatus } from '../../services/lab.js';

export default class LabStatus extends TandemCommand {
  static override summary = "Every lab node's modules, and what the client gets on the virtual IP.";
  static override examples = ['<%= config.bin %> lab status', 'watch -n 0.5 <%= config.bin %> lab status'];
  static override flags = { lab: labFlag };

  async run(): Promise<void> {
    const { flags } = await this.parse(LabStatus);
    this.log(await labStatus(await findLab(flags.lab)));
  }
}

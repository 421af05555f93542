import { moduleFlag, TandemCommand } from '../cli/base.js';
import { uninstallModule } from '../services/modules.js';

export default class Uninstall extends TandemCommand {
  static override summary = 'Remove a stopped module from this node.';
  static override examples = ['<%= config.bin %> uninstall -m demo'];
  static override flags = { module: moduleFlag };

  async run(): Promise<void> {
    const { flags } = await this.parse(Uninstall);
    const m = this.needModule(flags.module);
    await uninstallModule(this.home(), m);
    this.log(`module ${m} uninstalled (its log stays in $TANDEM_HOME/log/${m}.log)`);
  }
}

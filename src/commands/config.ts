import { moduleFlag, TandemCommand } from '../cli/base.js';
import { configModule } from '../services/modules.js';

export default class Config extends TandemCommand {
  static override summary = "Validate and apply a module's configuration.";
  static override description = `Checks $TANDEM_HOME/modules/NAME/userconfig.xml against cluster.xml; an unsupported element or attribute is an error
naming it and its line. A stopped module is reloaded; a running one accepts only node-local changes (script timeouts,
variables): stop it first to change anything shared with the peer. Exit 10 with the error when invalid.`;
  static override examples = ['<%= config.bin %> config -m demo'];
  static override flags = { module: moduleFlag };

  async run(): Promise<void> {
    const { flags } = await this.parse(Config);
    this.log(await configModule(this.home(), this.needModule(flags.module)));
  }
}

import { Flags } from '@oclif/core';
import { moduleFlag, TandemCommand } from '../cli/base.js';
import { configModule, installModule } from '../services/modules.js';
import { paragraphs } from '../cli/paragraphs.js';

export default class Config extends TandemCommand {
  static override summary = "Validate and apply a module's configuration.";
  static override description = paragraphs(`Checks $TANDEM_HOME/modules/NAME/userconfig.xml against cluster.xml; an unsupported element or attribute is an error
naming it and its line. A stopped module is reloaded; a running one accepts only node-local changes (script timeouts,
variables): stop it first to change anything shared with the peer. Exit 10 with the error when invalid.
With --push SOURCE the module is first installed from SOURCE (a directory or package, replacing the installed one, as
\`tandem install --force\`), then applied; with -H (\`tandem -H node1,node2 config -m NAME --push DIR\`) the directory
is sent to every node over ssh and installed and applied there.`);
  static override examples = ['<%= config.bin %> config -m demo', "<%= config.bin %> -H '*' config -m demo --push ./demo"];
  static override flags = {
    module: moduleFlag,
    push: Flags.string({ description: 'install the module from this directory or package first (replacing it), then apply', helpValue: 'SOURCE' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Config);
    const module = this.needModule(flags.module);
    if (flags.push !== undefined) {
      const r = await installModule(this.home(), module, flags.push, true);
      this.log(`module ${r.module} installed: ${r.applied}`);
      return;
    }
    this.log(await configModule(this.home(), module));
  }
}

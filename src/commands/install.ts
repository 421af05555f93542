import { Args, Flags } from '@oclif/core';
import { moduleFlag, TandemCommand } from '../cli/base.js';
import { installModule } from '../services/modules.js';
import { paragraphs } from '../cli/paragraphs.js';

export default class Install extends TandemCommand {
  static override summary = 'Install a module from a directory or a package.';
  static override description = paragraphs(`The source holds userconfig.xml and bin/ (scripts), as a directory or a .tar/.tar.gz/.tgz archive (one written by
\`tandem package\` names its module: -m may be left out, and must match when given). The package and its configuration
are checked (against cluster.xml and the modules installed here) before anything is copied to $TANDEM_HOME/modules/NAME;
a running daemon loads it. Install the same module on every node. A SafeKit .safe is refused with how to convert it.`);
  static override examples = ['<%= config.bin %> install -m demo ./examples/demo', '<%= config.bin %> install postgres.tar.gz --force'];
  static override flags = { module: moduleFlag, force: Flags.boolean({ description: 'replace an installed module of that name' }) };
  static override args = { source: Args.string({ required: true, description: 'module directory or package' }) };

  async run(): Promise<void> {
    const { flags, args } = await this.parse(Install);
    const r = await installModule(this.home(), flags.module, args.source, flags.force);
    this.log(`module ${r.module}: ${r.applied}`);
  }
}

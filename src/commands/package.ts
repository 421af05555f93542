import { Args, Flags } from '@oclif/core';
import { moduleFlag, TandemCommand } from '../cli/base.js';
import { packageModule } from '../services/package.js';
import { paragraphs } from '../cli/paragraphs.js';

export default class Package extends TandemCommand {
  static override summary = 'Write an installed module as a .tar.gz package, to install on the other nodes.';
  static override description = paragraphs(`The package holds the module's directory (userconfig.xml and bin/, with their modes) under NAME/, and a
.tandem-package manifest naming the module; \`tandem install FILE\` on another node checks and installs it.`);
  static override examples = ['<%= config.bin %> package -m demo demo.tar.gz', 'scp demo.tar.gz node2: && ssh node2 tandem install demo.tar.gz'];
  static override flags = {
    module: moduleFlag,
    force: Flags.boolean({ description: 'replace FILE if it exists' }),
    json: Flags.boolean({ description: 'machine-readable output' }),
  };
  static override args = { file: Args.string({ required: true, description: 'the package to write (.tar.gz or .tgz)' }) };

  async run(): Promise<void> {
    const { flags, args } = await this.parse(Package);
    const r = await packageModule(this.home(), this.needModule(flags.module), args.file, flags.force);
    this.log(flags.json ? JSON.stringify(r, null, 2) : `module ${r.module}: ${r.files} files written to ${r.file} (${r.bytes} bytes)`);
  }
}

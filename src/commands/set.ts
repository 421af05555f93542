import { Flags } from '@oclif/core';
import { moduleFlag, TandemCommand } from '../cli/base.js';
import { setResource } from '../services/resources.js';
import { paragraphs } from '../cli/paragraphs.js';

export default class SetResource extends TandemCommand {
  static override summary = 'Set the state of a custom checker\'s resource (what a <custom> checker program calls).';
  static override description = paragraphs(`Only custom.<ident> resources can be set, while their checker runs (its "when"). The failover rules then act on it:
by default c_<ident> takes the checker's action when it is down.`);
  static override examples = ['<%= config.bin %> set -m demo -r custom.db -v down', 'tandem set -m demo -r custom.db -v up'];
  static override flags = {
    module: moduleFlag,
    resource: Flags.string({ char: 'r', description: 'the resource, custom.<ident>', required: true, helpValue: 'RES' }),
    value: Flags.string({ char: 'v', description: 'up or down', required: true, options: ['up', 'down'] }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(SetResource);
    this.log(await setResource(this.home(), this.needModule(flags.module), flags.resource, flags.value));
  }
}

import { Args, loadHelpClass } from '@oclif/core';
import { TandemCommand } from '../cli/base.js';

export default class HelpCommand extends TandemCommand {
  static override summary = 'Show help for tandem or for one command (as `tandem COMMAND --help`).';
  static override examples = ['<%= config.bin %> help', '<%= config.bin %> help lab up'];
  static override strict = false;
  static override args = { command: Args.string({ required: false, description: 'the command, e.g. state or lab up' }) };

  async run(): Promise<void> {
    const { argv } = await this.parse(HelpCommand);
    const Help = await loadHelpClass(this.config);
    await new Help(this.config, this.config.pjson.oclif.helpOptions ?? {}).showHelp(argv as string[]);
  }
}

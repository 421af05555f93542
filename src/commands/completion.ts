import { Args } from '@oclif/core';
import { TandemCommand } from '../cli/base.js';
import { completionScript, SHELLS, specFromConfig, type Shell } from '../cli/completion.js';
import { paragraphs } from '../cli/paragraphs.js';

export default class Completion extends TandemCommand {
  static override summary = 'Print the shell completion script for bash, zsh or fish.';
  static override description = paragraphs(`Generated from this tandem's command manifest, so it completes exactly its commands and flags (and the
module names installed in $TANDEM_HOME/modules for -m; before the command, -H and the node names of
$TANDEM_HOME/cluster.xml).`);
  static override examples = [
    '<%= config.bin %> completion bash > /etc/bash_completion.d/tandem',
    '<%= config.bin %> completion zsh > /usr/local/share/zsh/site-functions/_tandem',
    '<%= config.bin %> completion fish > ~/.config/fish/completions/tandem.fish',
  ];
  static override args = { shell: Args.string({ required: true, options: [...SHELLS], description: SHELLS.join(' | ') }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Completion);
    process.stdout.write(completionScript(args.shell as Shell, specFromConfig(this.config), this.config.bin));
  }
}

import { Args } from '@oclif/core';
import { TandemCommand } from '../../cli/base.js';
import { labFlag } from '../../cli/lab-flag.js';
import { findLab } from '../../services/lab.js';
import { EXIT_USAGE } from '../../errors.js';

export default class LabExec extends TandemCommand {
  static override summary = "Run a command on a lab host (its network and its own files; nodes get their TANDEM_HOME).";
  static override examples = ['<%= config.bin %> lab exec node1 -- tandem status', '<%= config.bin %> lab exec client -- ip neigh'];
  static override strict = false;
  static override flags = { lab: labFlag };
  static override args = { host: Args.string({ required: true }) };

  async run(): Promise<void> {
    const { flags, args, argv } = await this.parse(LabExec);
    const cmd = (argv as string[]).slice(1);
    if (cmd.length === 0) this.error('give the command after the host, e.g. `tandem lab exec node1 -- tandem status`', { exit: EXIT_USAGE });
    const lab = await findLab(flags.lab);
    const [first, ...rest] = cmd[0] === 'tandem' ? [...lab.spec.cliCommand, ...cmd.slice(1)] : cmd;
    const r = await lab.exec(args.host, [first!, ...rest], { reject: false });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code ?? 1;
  }
}

import os from 'node:os';
import { Args } from '@oclif/core';
import { execa } from 'execa';
import { TandemCommand } from '../../cli/base.js';
import { labFlag } from '../../cli/lab-flag.js';
import { UserError } from '../../errors.js';
import { findLab } from '../../services/lab.js';
import { EXIT_USAGE } from '../../errors.js';
import { paragraphs } from '../../cli/paragraphs.js';

export default class LabExec extends TandemCommand {
  static override summary = "Run a command on a lab host (its network and its own files; nodes get their TANDEM_HOME).";
  static override description = paragraphs(`The command gets this terminal: its output as it comes, and its keys when stdin is a terminal (so
\`tandem lab exec node2 -- tandem dashboard\` and \`tandem lab exec node1 -- tandem log -m demo -f\` work). A SIGTERM
or SIGHUP for lab exec is passed on to the command. The exit code is the command's (128 + the signal's number when a
signal ended it).`);
  static override examples = ['<%= config.bin %> lab exec node1 -- tandem status', '<%= config.bin %> lab exec node2 -- tandem dashboard', '<%= config.bin %> lab exec client -- ip neigh'];
  static override strict = false;
  static override flags = { lab: labFlag };
  static override args = { host: Args.string({ required: true }) };

  async run(): Promise<void> {
    const { flags, args, argv } = await this.parse(LabExec);
    const cmd = (argv as string[]).slice(1);
    if (cmd.length === 0) this.error('give the command after the host, e.g. `tandem lab exec node1 -- tandem status`', { exit: EXIT_USAGE });
    const lab = await findLab(flags.lab);
    const host = lab.spec.hosts.find((h) => h.name === args.host);
    if (!host) throw new UserError(`lab ${lab.prefix} has no host ${args.host}.`, `its hosts: ${lab.spec.hosts.map((h) => h.name).join(', ')}`);
    if (lab.isPoweredOff(host.name)) throw new UserError(`host ${host.name} is powered off.`, `boot it first: \`tandem lab boot ${host.name}\``);
    const [first, ...rest] = cmd[0] === 'tandem' ? [...lab.spec.cliCommand, ...cmd.slice(1)] : cmd;
    // stdout and stderr are passed through (a terminal stays a terminal); stdin only when it is a terminal, so a
    // script's pipe is not consumed by the command
    const [file, ...a] = lab.hostArgv(host.name, [first!, ...rest]);
    const child = execa(file!, a, {
      reject: false,
      stdin: process.stdin.isTTY ? 'inherit' : 'ignore',
      stdout: 'inherit',
      stderr: 'inherit',
      env: host.role === 'node' ? lab.nodeEnv(host.name) : {},
    });
    // as if the command ran in our place: a signal for us goes to it, and we end when it ends. From a terminal,
    // Ctrl-C already reaches it (same process group), so it is not sent twice.
    const forwarded: NodeJS.Signals[] = process.stdin.isTTY ? ['SIGTERM', 'SIGHUP'] : ['SIGTERM', 'SIGHUP', 'SIGINT'];
    const forward = (sig: NodeJS.Signals) => { child.kill(sig); };
    for (const sig of forwarded) process.on(sig, forward);
    if (process.stdin.isTTY) process.on('SIGINT', () => {});
    const r = await child;
    for (const sig of forwarded) process.off(sig, forward);
    process.exitCode = r.exitCode ?? (r.signal ? 128 + os.constants.signals[r.signal] : 1);
  }
}

import { existsSync } from 'node:fs';
import { Args, Flags } from '@oclif/core';
import { TandemCommand } from '../cli/base.js';
import { run } from '../platform/exec.js';
import { bootOff, bootOn, bootStatus, DEFAULT_UNIT_DIR, formatBootStatus, type BootEnv } from '../services/boot.js';
import { daemonRequestIfRunning } from '../services/daemon-client.js';

export default class Boot extends TandemCommand {
  static override summary = 'Start the daemon at boot (systemd unit): on, off, or status.';
  static override description = [
    'on: installs the systemd unit tandem.service, whose ExecStart runs this tandem (the node entry or the single binary), and enables it.',
    'off: disables it; the unit file stays. status: installed, enabled, active, daemon running.',
    'Neither on nor off starts or stops a running daemon: they decide the next boot (`systemctl start tandem` starts it now). ' +
      'Without a running systemd, on and off write or remove the multi-user.target.wants link themselves and say so.',
  ].join('\n\n');
  static override examples = ['<%= config.bin %> boot on', '<%= config.bin %> boot status', '<%= config.bin %> boot off'];
  static override args = { what: Args.string({ required: true, options: ['on', 'off', 'status'], description: 'on: install and enable; off: disable; status: show' }) };
  static override flags = {
    'unit-dir': Flags.string({ description: `where the unit goes (default ${DEFAULT_UNIT_DIR})`, env: 'TANDEM_SYSTEMD_DIR', helpValue: 'DIR' }),
    json: Flags.boolean({ description: 'machine-readable output' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Boot);
    const home = this.home();
    const env: BootEnv = {
      unitDir: flags['unit-dir'] ?? DEFAULT_UNIT_DIR,
      run,
      systemdRunning: existsSync('/run/systemd/system'),
      systemdDir: DEFAULT_UNIT_DIR,
      execPath: process.execPath,
      script: process.argv[1],
      // the daemon must use the home this command uses (absolute: systemd starts it in /)
      env: { TANDEM_HOME: process.env.TANDEM_HOME ? home.root : undefined, TANDEM_RUN_DIR: process.env.TANDEM_RUN_DIR ? home.runDir : undefined },
      daemonRunning: async () => (await daemonRequestIfRunning(home, 'ping').catch(() => null)) !== null,
    };
    if (args.what === 'status') {
      const s = await bootStatus(env);
      return void this.log(flags.json ? JSON.stringify(s, null, 2) : formatBootStatus(s));
    }
    const r = args.what === 'on' ? await bootOn(env) : await bootOff(env);
    this.log(flags.json ? JSON.stringify(r, null, 2) : r.messages.join('\n'));
  }
}

import { Flags } from '@oclif/core';
import { TandemCommand } from '../cli/base.js';
import { listModules } from '../config/load.js';
import type { StatusView } from '../daemon/views.js';
import { daemonRequestIfRunning } from '../services/daemon-client.js';
import { colourState } from '../services/status.js';

export default class List extends TandemCommand {
  static override summary = 'List the modules installed on this node.';
  static override examples = ['<%= config.bin %> list', '<%= config.bin %> list --json'];
  static override flags = { json: Flags.boolean({ description: 'machine-readable output' }) };

  async run(): Promise<void> {
    const { flags } = await this.parse(List);
    const home = this.home();
    const names = listModules(home);
    const st = (await daemonRequestIfRunning(home, 'status')) as StatusView | null;
    const rows = names.map((n) => {
      const m = st?.modules.find((x) => x.module === n) ?? st?.farms?.find((x) => x.module === n);
      return { module: n, state: m?.state ?? null, ready: m?.ready ?? null };
    });
    if (flags.json) return void this.log(JSON.stringify({ daemon: st !== null, modules: rows }, null, 2));
    if (rows.length === 0) return void this.log('no modules installed (install one with `tandem install -m NAME <dir>`)');
    for (const r of rows) this.log(`${r.module.padEnd(20)} ${st ? colourState(r.state, r.ready) : 'daemon not running'}`);
  }
}

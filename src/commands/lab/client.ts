import { Flags } from '@oclif/core';
import { TandemCommand } from '../../cli/base.js';
import { labFlag } from '../../cli/lab-flag.js';
import { DEMO_PORT, DEMO_VIP } from '../../lab/mirror-lab.js';
import { findLab } from '../../services/lab.js';

export default class LabClient extends TandemCommand {
  static override summary = 'From the client host, request the demo application on the virtual IP, again and again.';
  static override examples = ['<%= config.bin %> lab client', '<%= config.bin %> lab client --count 1'];
  static override flags = {
    lab: labFlag,
    count: Flags.integer({ description: 'number of requests (default: until Ctrl-C)', min: 1 }),
    interval: Flags.integer({ description: 'milliseconds between requests', default: 200, min: 10 }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(LabClient);
    const lab = await findLab(flags.lab);
    const url = `http://${DEMO_VIP}:${DEMO_PORT}/`;
    for (let i = 0; flags.count === undefined || i < flags.count; i++) {
      const t = new Date().toISOString().slice(11, 23);
      const r = await lab.httpGet('client', url, 1000);
      this.log(`${t} ${url} → ${r.ok ? r.body?.trim() : `no answer (${r.error ?? r.status})`}`);
      if (flags.count === undefined || i + 1 < flags.count) await new Promise((res) => setTimeout(res, flags.interval));
    }
  }
}

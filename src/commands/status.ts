import { Flags } from '@oclif/core';
import { moduleFlag, TandemCommand } from '../cli/base.js';
import type { StatusView } from '../daemon/views.js';
import { daemonRequest } from '../services/daemon-client.js';
import { formatStatus } from '../services/status.js';
import { paragraphs } from '../cli/paragraphs.js';

export default class Status extends TandemCommand {
  static override summary = 'Show every module on this node and what it knows of its peer.';
  static override description = paragraphs(`For each module: state (ready or transient, and why it waits), the peer's state, heartbeats per LAN, who holds the
virtual IP, the data generation, reintegration progress and alarms. --json prints the documented contract (README).`);
  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status -m demo --json'];
  static override flags = { module: moduleFlag, json: Flags.boolean({ description: 'machine-readable output (stable contract)' }) };

  async run(): Promise<void> {
    const { flags } = await this.parse(Status);
    const v = (await daemonRequest(this.home(), 'status', flags.module)) as StatusView;
    this.log(flags.json ? JSON.stringify(v, null, 2) : formatStatus(v));
  }
}

import { Flags } from '@oclif/core';
import { moduleFlag, TandemCommand } from '../cli/base.js';
import { getResource, RESOURCE_EXIT_CODE } from '../services/resources.js';
import { colourResource } from '../services/status.js';
import { paragraphs } from '../cli/paragraphs.js';

export default class Get extends TandemCommand {
  static override summary = "Print one of a module's resources; the exit code is its state.";
  static override description = paragraphs(`Resources are what checkers and process monitoring report (proc.*, tcp.*, ping.*, intf.*, ip.*, custom.*,
module.*) and what the engine derives (heartbeat.<lan>, rfs.uptodate). Exit codes: up 0, down 1, init 3 (no result
yet, or not watched now), unknown 4; errors exit 10 or more.`);
  static override examples = ['<%= config.bin %> get -m demo -r tcp.web', 'tandem get -m demo -r proc.web --json'];
  static override flags = {
    module: moduleFlag,
    resource: Flags.string({ char: 'r', description: 'resource name, class.ident (e.g. ping.router)', required: true, helpValue: 'RES' }),
    json: Flags.boolean({ description: 'machine-readable output' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Get);
    const r = await getResource(this.home(), this.needModule(flags.module), flags.resource);
    if (flags.json) this.log(JSON.stringify(r, null, 2));
    else this.log(`${r.name} ${colourResource(r.state)}${r.since ? ` since ${r.since}` : ''}${r.active ? '' : ' (not watched now)'}${r.detail ? `: ${r.detail}` : ''}`);
    this.exit(RESOURCE_EXIT_CODE[r.state]);
  }
}

import { Flags } from '@oclif/core';
import { moduleFlag, TandemCommand } from './base.js';
import { adminModule } from '../services/modules.js';
import { paragraphs } from './paragraphs.js';

/** The module commands sent to the daemon (start, stop, swap, …): same flags, same handling. */
export function adminCommand(verb: string, summary: string, description: string, withFullsync = false) {
  const flags = {
    module: moduleFlag,
    ...(withFullsync ? { fullsync: Flags.boolean({ description: 'compare every file at the next reintegration instead of only the recorded changes' }) } : {}),
  };
  return class extends TandemCommand {
    static override summary = summary;
    static override description = paragraphs(description);
    static override examples = [`<%= config.bin %> ${verb} -m demo`, ...(withFullsync ? [`<%= config.bin %> ${verb} -m demo --fullsync`] : [])];
    static override flags = flags;

    async run(): Promise<void> {
      const { flags: f } = await this.parse(this.constructor as typeof TandemCommand & { flags: typeof flags });
      const fullsync = (f as { fullsync?: boolean }).fullsync ?? false;
      this.log(await adminModule(this.home(), this.needModule(f.module), verb, fullsync));
    }
  };
}

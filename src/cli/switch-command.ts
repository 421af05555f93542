import { Args } from '@oclif/core';
import { moduleFlag, TandemCommand } from './base.js';
import { adminModule } from '../services/modules.js';
import { paragraphs } from './paragraphs.js';

/** `tandem errd|checker|failover on|off -m M`: a runtime switch of the module, kept across daemon restarts. */
export function switchCommand(name: 'errd' | 'checker' | 'failover', summary: string, description: string,
  extra: { arg: string; run: (home: ReturnType<TandemCommand['home']>, module: string) => Promise<string> } | null = null) {
  const options = ['on', 'off', ...(extra ? [extra.arg] : [])];
  return class extends TandemCommand {
    static override summary = summary;
    static override description = paragraphs(description);
    static override examples = [`<%= config.bin %> ${name} off -m demo`, `<%= config.bin %> ${name} on -m demo`, ...(extra ? [`<%= config.bin %> ${name} ${extra.arg} -m demo`] : [])];
    static override args = { what: Args.string({ required: true, options, description: options.join(' | ') }) };
    static override flags = { module: moduleFlag };

    async run(): Promise<void> {
      const { args, flags } = await this.parse(this.constructor as typeof TandemCommand & { args: { what: ReturnType<typeof Args.string> }; flags: { module: typeof moduleFlag } });
      const module = this.needModule((flags as { module?: string }).module);
      const what = (args as { what: string }).what;
      if (extra && what === extra.arg) return void this.log(await extra.run(this.home(), module));
      this.log(await adminModule(this.home(), module, `${name}-${what}`));
    }
  };
}

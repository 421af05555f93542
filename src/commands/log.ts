import { Flags } from '@oclif/core';
import { moduleFlag, TandemCommand } from '../cli/base.js';
import { followLog, jsonLines, tailLog } from '../services/log.js';

export default class Log extends TandemCommand {
  static override summary = "Show a module's log (decisions, transitions, script output).";
  static override examples = ['<%= config.bin %> log -m demo', '<%= config.bin %> log -m demo -n 200', '<%= config.bin %> log -m demo -f', '<%= config.bin %> log -m demo -n 10 --json'];
  static override flags = {
    module: moduleFlag,
    lines: Flags.integer({ char: 'n', description: 'number of last lines', default: 50, min: 1 }),
    follow: Flags.boolean({ char: 'f', description: 'keep printing new lines (Ctrl-C to stop)' }),
    json: Flags.boolean({ description: 'JSON Lines: one {"module","at","level","line"} object per log line (also with -f)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Log);
    const m = this.needModule(flags.module);
    const { text, size } = await tailLog(this.home(), m, flags.lines);
    const out = flags.json ? jsonLines(m) : (chunk: string) => chunk;
    process.stdout.write(out(text));
    if (flags.follow) await followLog(this.home(), m, size, (chunk) => process.stdout.write(out(chunk)));
  }
}

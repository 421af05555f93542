import { Command, Flags } from '@oclif/core';
import chalk from 'chalk';
import { BugError, EXIT_BUG, EXIT_EXTERNAL_ERROR, EXIT_USER_ERROR, ExternalError, UserError } from '../errors.js';
import { resolveHome, type Home } from '../home.js';

export const moduleFlag = Flags.string({
  char: 'm',
  description: 'module name (or set TANDEM_MODULE)',
  env: 'TANDEM_MODULE',
  helpValue: 'NAME',
});

/**
 * Base of every tandem command: the one error handler (STYLE.md §5).
 *   UserError → message + what to do next, exit 10;  ExternalError → command, exit code, stderr, exit 11;
 *   anything else → BugError with a stack and a request for `tandem snapshot`, exit 12.
 * Invalid command lines (oclif's parse errors, unknown commands) exit EXIT_USAGE (64), set in package.json
 * `oclif.exitCodes`, so that they never look like a state code of `tandem state` (2 = ALONE).
 */
export abstract class TandemCommand extends Command {
  protected home(): Home {
    return resolveHome(process.env);
  }

  protected needModule(m: string | undefined): string {
    if (!m) throw new UserError('this command needs a module: add -m <module> (or set TANDEM_MODULE).', 'list installed modules with `tandem list`');
    return m;
  }

  override async catch(err: Error & { oclif?: { exit?: number } }): Promise<unknown> {
    if (err.oclif?.exit !== undefined) throw err;
    if (err instanceof UserError) {
      process.stderr.write(`${chalk.red('error:')} ${err.message}\n${err.hint ? `  ${chalk.dim('→')} ${err.hint}\n` : ''}`);
      process.exitCode = EXIT_USER_ERROR;
      return;
    }
    if (err instanceof ExternalError) {
      process.stderr.write(`${chalk.red('error:')} ${err.message}\n`);
      process.exitCode = EXIT_EXTERNAL_ERROR;
      return;
    }
    if (err.name === 'CLIError' || (err as { code?: string }).code?.startsWith?.('EEXIT')) throw err;
    const bug = err instanceof BugError ? err : new BugError(err.message);
    process.stderr.write(`${chalk.red('internal error (a bug in tandem):')} ${bug.message}\n${err.stack ?? ''}\n` +
      `Please report it with a support snapshot: run \`tandem snapshot\` and send the file it writes.\n`);
    process.exitCode = EXIT_BUG;
    return;
  }
}

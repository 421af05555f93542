/**
 * The one set of errors tandem raises (STYLE.md §5). Every thrown error that reaches a command handler is one of
 * these; anything else is treated as a BugError.
 */

/** The user can fix it: the message says what is wrong and what to do next. Exit code 10. */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(message: string, readonly hint?: string) {
    super(message);
  }
}

/** An outside command failed: carries the command line, its exit code and stderr. Exit code 11. */
export class ExternalError extends Error {
  override readonly name = 'ExternalError';
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    message?: string,
  ) {
    super(message ?? `command failed (exit ${exitCode ?? 'signal'}): ${command}${stderr ? `\n${stderr.trim()}` : ''}`);
  }
}

/** An invariant broke: print a stack and ask for a `tandem snapshot`. Exit code 12. */
export class BugError extends Error {
  override readonly name = 'BugError';
}

export const EXIT_USER_ERROR = 10;
export const EXIT_EXTERNAL_ERROR = 11;
export const EXIT_BUG = 12;
/**
 * Invalid command line (unknown command or flag, missing or unexpected argument, bad flag value): BSD sysexits' EX_USAGE.
 * Distinct from every state exit code of `tandem state` (0..4) and `tandem get` (0..4). oclif's parse errors get it
 * from package.json `oclif.exitCodes`.
 */
export const EXIT_USAGE = 64;

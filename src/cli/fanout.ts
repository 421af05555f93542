/**
 * `tandem -H node1,node2 <command> [args]` and `tandem -H '*' …`: the global flag of the fan-out over ssh
 * (services/fanout.ts runs it). oclif has no global flags before a command id, so both entries (bin/tandem and the
 * single binary's src/cli/binary.ts) call `runFanoutIfAsked` with the raw argv before oclif sees it; when the argv does
 * not start with -H it returns undefined and the entry runs oclif as always.
 *
 * This module is imported on every start of tandem: it imports nothing heavy at load time (the service is loaded
 * only when -H is given).
 */
import { EXIT_EXTERNAL_ERROR, EXIT_USAGE, EXIT_USER_ERROR, ExternalError, UserError } from '../errors.js';

/** What the argv asked for: the hosts as given (`'*'` = every node of cluster.xml) and the command to run there. */
export interface FanoutArgv {
  hosts: string[] | '*';
  /** the tandem command line to run on each node, as the user typed it (without -H) */
  args: string[];
}

/** An invalid -H on the command line: exit 64 (EXIT_USAGE) with what to write instead. */
export class FanoutUsageError extends UserError {}

/**
 * The fan-out flag's spellings and values, the one source for parseFanoutArgv and the shell completions
 * (src/cli/completion.ts): `-H LIST`, `-HLIST`, `-H=LIST`, `--hosts LIST`, `--hosts=LIST` as the first argument; LIST
 * is node names joined by `separator`, or `all` alone for every node of cluster.xml.
 */
export const FANOUT_FLAG = {
  char: 'H',
  name: 'hosts',
  separator: ',',
  all: '*',
  summary: "run the command on these nodes over ssh: node1,node2 or '*' (every node of cluster.xml)",
} as const;

const SHORT = `-${FANOUT_FLAG.char}`;
const LONG = `--${FANOUT_FLAG.name}`;

const HOSTS_HINT = "write -H node1,node2 <command> (node names as ssh destinations) or -H '*' <command> (every node of cluster.xml)";

/**
 * Pre-parses argv (without node and the script): `-H LIST`, `-HLIST`, `-H=LIST`, `--hosts LIST`, `--hosts=LIST` as
 * the first argument. Returns null when the first argument is not one of these (the command line is oclif's).
 * Throws FanoutUsageError for a missing or empty list, a name that ssh would read as an option (leading `-`), a name
 * with a character no host name has, or no command after the list.
 */
export function parseFanoutArgv(argv: readonly string[]): FanoutArgv | null {
  const first = argv[0];
  if (first === undefined) return null;
  let value: string | undefined;
  let rest: readonly string[];
  if (first === SHORT || first === LONG) {
    value = argv[1];
    rest = argv.slice(2);
  } else if (first.startsWith(`${LONG}=`)) {
    value = first.slice(LONG.length + 1);
    rest = argv.slice(1);
  } else if (first.startsWith(SHORT)) {
    value = first.slice(SHORT.length).replace(/^=/, '');
    rest = argv.slice(1);
  } else {
    return null;
  }
  if (value === undefined || value === '') throw new FanoutUsageError(`${first} needs a list of nodes.`, HOSTS_HINT);
  if (rest.length === 0) throw new FanoutUsageError(`-H ${value}: which command should run there?`, `e.g. tandem -H ${value} status`);
  if (value.trim() === FANOUT_FLAG.all) return { hosts: '*', args: [...rest] };
  const hosts = value.split(FANOUT_FLAG.separator).map((h) => h.trim());
  for (const h of hosts) {
    if (h === '') throw new FanoutUsageError(`-H ${value}: an empty node name.`, HOSTS_HINT);
    if (h === FANOUT_FLAG.all) throw new FanoutUsageError(`-H ${value}: '*' means every node of cluster.xml and stands alone.`, HOSTS_HINT);
    if (h.startsWith('-')) throw new FanoutUsageError(`-H ${value}: "${h}" is not a node name (ssh would read it as an option).`, HOSTS_HINT);
    if (!/^[A-Za-z0-9_.:@[\]%-]+$/.test(h)) throw new FanoutUsageError(`-H ${value}: "${h}" is not a node name or ssh destination.`, HOSTS_HINT);
  }
  return { hosts: [...new Set(hosts)], args: [...rest] };
}

/**
 * How an entry tells whether a command takes a flag: the flags of the command with id `id` (`lab:up`), or undefined
 * when there is no such command here.
 */
export type CommandFlags = (id: string) => Promise<Record<string, unknown> | undefined>;

/**
 * The entries' hook: when argv starts with -H, runs the fan-out and returns the exit code to exit with; otherwise
 * returns undefined (run oclif). Errors are printed as the command handler prints them (src/cli/base.ts):
 * a bad -H exits 64, a UserError 10, an ExternalError (no ssh here) 11.
 */
export async function runFanoutIfAsked(argv: readonly string[], commandFlags: CommandFlags): Promise<number | undefined> {
  let parsed: FanoutArgv | null;
  try {
    parsed = parseFanoutArgv(argv);
  } catch (e) {
    if (e instanceof FanoutUsageError) return printUserError(e, EXIT_USAGE);
    throw e;
  }
  if (!parsed) return undefined;
  const { fanout } = await import('../services/fanout.js');
  const { openSsh } = await import('../platform/ssh/openssh.js');
  try {
    return await fanout(parsed, { ssh: openSsh(process.env), env: process.env, commandFlags, stdout: process.stdout, stderr: process.stderr });
  } catch (e) {
    if (e instanceof UserError) return printUserError(e, EXIT_USER_ERROR);
    if (e instanceof ExternalError) return printUserError(e, EXIT_EXTERNAL_ERROR);
    throw e;
  }
}

async function printUserError(e: UserError | ExternalError, code: number): Promise<number> {
  const { default: chalk } = await import('chalk');
  const hint = e instanceof UserError ? e.hint : undefined;
  process.stderr.write(`${chalk.red('error:')} ${e.message}\n${hint ? `  ${chalk.dim('→')} ${hint}\n` : ''}`);
  return code;
}

import type { ProcSpec } from '../config/types.js';
import { UserError } from '../errors.js';
import type { ProcInfo } from '../platform/procs/types.js';

/** Which processes an errd `<proc>` counts. */
export interface ProcMatcher {
  /** the part of the test that needs only the process name: scans read command lines only of processes passing it */
  comm(comm: string): boolean;
  /** the whole test */
  matches(p: ProcInfo): boolean;
}

/** The comm the kernel keeps: at most 15 bytes (TASK_COMM_LEN - 1). */
const COMM_MAX = 15;

/**
 * SafeKit's matching: `nameregex` is searched (not anchored: write `^…$` for a whole name) in the comm; without it
 * the comm must equal `name`, or its first 15 characters when `name` is longer, since the kernel cuts comm there.
 * `argregex`, when set, is searched in the command line joined with spaces. Regular expressions are JavaScript's;
 * an invalid one is a UserError naming the errd entry.
 */
export function procMatcher(spec: Pick<ProcSpec, 'name' | 'nameregex' | 'argregex'> & { line?: number }): ProcMatcher {
  const nameRe = spec.nameregex === null ? null : compile(spec, 'nameregex', spec.nameregex);
  const argRe = spec.argregex === null ? null : compile(spec, 'argregex', spec.argregex);
  const exact = spec.name.slice(0, COMM_MAX);
  const comm = nameRe ? (c: string) => nameRe.test(c) : (c: string) => c === exact;
  return {
    comm,
    matches: (p) => comm(p.comm) && (!argRe || argRe.test(p.argv.join(' '))),
  };
}

function compile(spec: { name: string; line?: number }, attr: string, source: string): RegExp {
  try {
    return new RegExp(source);
  } catch (e) {
    const where = spec.line ? `userconfig.xml line ${spec.line}: ` : '';
    throw new UserError(`${where}<proc name="${spec.name}"> ${attr}="${source}" is not a valid regular expression (${(e as Error).message}); fix or remove it`);
  }
}

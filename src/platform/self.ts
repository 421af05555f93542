/**
 * How this tandem runs itself again (the daemon's replication hosts, `$TANDEM_BIN` in module scripts, a lab's
 * daemons): `node <entry script>` from the source tree, or the single binary alone (`bun build --compile`,
 * scripts/build-binary.mjs), whose `process.argv[1]` is a path inside the binary's embedded file system
 * (`/$bunfs/…`) that no other process can open.
 */

/** Where bun's compiled executables keep their embedded files (the entry's `process.argv[1]` starts with it). */
export const BUNFS_ROOT = '/$bunfs/';

/** True when this process is the single binary (bun-compiled), not node running a script. */
export function isSingleBinary(argv: readonly string[] = process.argv): boolean {
  return (argv[1] ?? '').startsWith(BUNFS_ROOT);
}

/**
 * The argv prefix that runs this tandem again, followed by a command and its flags: `[node, script]`, or
 * `[binary]` for the single binary. `[execPath]` alone when there is no script (node -e, a REPL).
 */
export function tandemArgv(argv: readonly string[] = process.argv, execPath: string = process.execPath): string[] {
  if (isSingleBinary(argv) || !argv[1]) return [execPath];
  return [execPath, argv[1]];
}

/**
 * One executable path that runs this tandem (for `$TANDEM_BIN`): the entry script (bin/tandem has a shebang) or the
 * single binary. `'tandem'` (from PATH) when there is neither.
 */
export function tandemExecutable(argv: readonly string[] = process.argv, execPath: string = process.execPath): string {
  if (isSingleBinary(argv)) return execPath;
  return argv[1] ?? 'tandem';
}

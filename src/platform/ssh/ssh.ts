/**
 * The seam of the fan-out (services/fanout.ts): run one remote shell command on one node over ssh.
 * openssh.ts runs the real `ssh`; fake.ts answers from a table for unit tests.
 */
export interface SshRun {
  /** The exit code of ssh: the remote command's, or 255 when ssh itself failed (unreachable, refused, bad key). null: killed by a signal. */
  code: number | null;
}

export interface SshRunOptions {
  /** sent to the remote command's stdin, then closed; without it stdin is closed at once (nothing to read) */
  input?: Uint8Array;
  /** called with each chunk of the remote stdout / stderr, in order; must not block */
  onStdout(chunk: Buffer): void;
  onStderr(chunk: Buffer): void;
}

export interface Ssh {
  /**
   * Runs `command` (one string, already quoted for the remote POSIX shell) on `node` (an ssh destination). Resolves
   * when ssh exits; rejects only when ssh cannot be started at all (not installed): an unreachable node resolves with 255.
   */
  run(node: string, command: string, opts: SshRunOptions): Promise<SshRun>;
  /** The command line a user can paste to try the connection to `node` by hand (for error hints). */
  describe(node: string): string;
}

/** ssh's own exit code when it failed to connect or authenticate (and the remote command's when it exits 255). */
export const SSH_FAILED = 255;

import { SSH_FAILED, type Ssh, type SshRunOptions } from './ssh.js';

/** What a fake node answers to any command: its outputs and exit code, or unreachable (ssh exits 255 with `error`). */
export interface FakeNode {
  stdout?: string;
  stderr?: string;
  code?: number | null;
  /** unreachable: ssh prints this on stderr and exits 255 */
  unreachable?: string;
  /** the answer depends on the command (checked first); return undefined to fall back to the fields above */
  answer?(command: string, input: Buffer | undefined): Omit<FakeNode, 'answer'> | undefined;
}

/** A remote command as the fake received it. */
export interface FakeCall {
  node: string;
  command: string;
  input?: Buffer;
}

/**
 * The fake seam for unit tests: each node answers from `nodes` (a node missing from it is unreachable, as a name ssh
 * cannot resolve). Output is delivered in two chunks split inside a line, as a pipe may. Records every call.
 */
export function fakeSsh(nodes: Record<string, FakeNode>): Ssh & { calls: FakeCall[] } {
  const calls: FakeCall[] = [];
  return {
    calls,
    describe: (node) => `ssh ${node} true`,
    async run(node: string, command: string, opts: SshRunOptions) {
      const input = opts.input ? Buffer.from(opts.input) : undefined;
      calls.push({ node, command, ...(input ? { input } : {}) });
      await Promise.resolve();
      const spec = nodes[node];
      const a = spec ? { ...spec, ...spec.answer?.(command, input) } : { unreachable: `ssh: Could not resolve hostname ${node}: Name or service not known` };
      if (a.unreachable !== undefined) {
        opts.onStderr(Buffer.from(`${a.unreachable}\n`));
        return { code: SSH_FAILED };
      }
      for (const [text, on] of [[a.stdout ?? '', opts.onStdout], [a.stderr ?? '', opts.onStderr]] as const) {
        const cut = Math.floor(text.length / 2);
        if (cut > 0) on(Buffer.from(text.slice(0, cut)));
        if (text.length > cut) on(Buffer.from(text.slice(cut)));
      }
      return { code: a.code === undefined ? 0 : a.code };
    },
  };
}

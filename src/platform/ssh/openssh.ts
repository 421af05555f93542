import { spawn } from 'node:child_process';
import { ExternalError } from '../../errors.js';
import type { Ssh, SshRun, SshRunOptions } from './ssh.js';

/**
 * The real seam: OpenSSH's `ssh`, with the user's own ~/.ssh/config, keys and agent. Every run is
 *   ssh -o BatchMode=yes [-F $TANDEM_SSH_CONFIG] [$TANDEM_SSH_OPTS…] -- NODE COMMAND
 * BatchMode: never a password or host-key prompt (a fan-out has no terminal to answer it; such a node fails with
 * ssh's message instead). TANDEM_SSH_OPTS is split on white space (e.g. `-o ConnectTimeout=5 -p 2222`); an option
 * value with a space goes in an ssh config file given by TANDEM_SSH_CONFIG.
 */
export function openSsh(env: NodeJS.ProcessEnv): Ssh {
  const base = sshBaseArgs(env);
  return {
    run: (node, command, opts) => runSsh([...base, '--', node, command], opts),
    describe: (node) => ['ssh', ...base, node, 'true'].join(' '),
  };
}

/** The options put before `-- NODE COMMAND`, from the environment (see openSsh). */
export function sshBaseArgs(env: NodeJS.ProcessEnv): string[] {
  const args = ['-o', 'BatchMode=yes'];
  if (env.TANDEM_SSH_CONFIG) args.push('-F', env.TANDEM_SSH_CONFIG);
  const extra = (env.TANDEM_SSH_OPTS ?? '').split(/\s+/).filter((a) => a !== '');
  return [...args, ...extra];
}

function runSsh(argv: string[], opts: SshRunOptions): Promise<SshRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => opts.onStdout(d));
    child.stderr.on('data', (d: Buffer) => opts.onStderr(d));
    child.stdin.on('error', () => undefined); // the remote command may exit without reading all of it
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT'
        ? new ExternalError(`ssh ${argv.join(' ')}`, null, '', 'ssh is not installed here: install OpenSSH\'s client (Debian: apt-get install openssh-client), then run this again.')
        : e);
    });
    child.on('close', (code) => resolve({ code }));
    child.stdin.end(opts.input ? Buffer.from(opts.input) : undefined);
  });
}

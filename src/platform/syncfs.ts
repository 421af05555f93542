import { ExternalError } from '../errors.js';
import { run } from './exec.js';

/**
 * syncfs(2) of the filesystem holding `dir`, through `sync -f DIR` (Node has no syncfs). Resolves once the
 * filesystem's dirty data is durable; rejects with ExternalError when the command fails, and when it has not
 * finished within `timeoutMs` (default SYNCFS_TIMEOUT_MS).
 *
 * The timeout holds even when the command cannot be killed: a `sync` blocked in the kernel on a dead disk or a hung
 * NFS server ignores SIGKILL until the I/O returns, so the command is killed (SIGTERM, then SIGKILL 2 s later) and, if
 * it still has not ended SYNCFS_KILL_GRACE_MS after the timeout, the caller is answered anyway (the process is left
 * to the kernel). Callers treat a timeout like a failure: the data is not known to be durable.
 */
export const SYNCFS_TIMEOUT_MS = 60_000;
export const SYNCFS_KILL_GRACE_MS = 3000;

export async function syncFilesystem(dir: string, o: { timeoutMs?: number; command?: string } = {}): Promise<void> {
  const timeoutMs = o.timeoutMs ?? SYNCFS_TIMEOUT_MS;
  const cmd = o.command ?? 'sync';
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ExternalError(`${cmd} -f ${dir}`, null, '',
      `${cmd} -f ${dir} did not finish within ${timeoutMs} ms and could not be killed (a disk or network filesystem that does not answer?)`)),
    timeoutMs + SYNCFS_KILL_GRACE_MS);
  });
  try {
    await Promise.race([run(cmd, ['-f', dir], { timeoutMs }), stuck]);
  } finally {
    clearTimeout(timer);
  }
}

import net from 'node:net';

/** What a running lossy disk reports: the model's counters (model.ts ModelStats) and the FUSE request counts. */
export interface LossyStats {
  pendingBytes: number;
  pendingFiles: number;
  writebacks: number;
  writebackBytes: number;
  fsyncs: number;
  fdatasyncs: number;
  dirSyncs: number;
  syncAlls: number;
  inodes: number;
  requests: number;
  errors: number;
}

/**
 * The control socket of a lossy disk server (a Unix socket in the lab dir): one JSON request per line, one JSON answer
 * per line, in order. The map is shared by the server (main.ts) and the client (`lossyRequest`).
 * - `stats`: the counters now.
 * - `sync`: everything becomes durable (what sync(2) does on a real disk; it does not reach a FUSE server); the
 *   answer comes once it is done.
 */
export interface LossyControl {
  stats: { stats: LossyStats };
  /** `syncAlls`: syncs of everything done by this server so far */
  sync: { syncAlls: number };
}
export type LossyCommand = keyof LossyControl;

export type LossyAnswer<C extends LossyCommand> = ({ ok: true } & LossyControl[C]) | { ok: false; error: string };

export async function lossyRequest<C extends LossyCommand>(socket: string, cmd: C, timeoutMs = 30_000): Promise<LossyControl[C]> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socket);
    let buf = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`lossy disk at ${socket} did not answer ${cmd} within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`lossy disk at ${socket}: ${err.message}`));
    });
    conn.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      conn.end();
      const a = JSON.parse(buf.slice(0, nl)) as LossyAnswer<C>;
      if (a.ok) resolve(a as unknown as LossyControl[C]);
      else reject(new Error(`lossy disk at ${socket}: ${a.error}`));
    });
    conn.write(`${JSON.stringify({ cmd })}\n`);
  });
}

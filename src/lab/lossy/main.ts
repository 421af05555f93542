import fs from 'node:fs';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { run } from '../../platform/exec.js';
import { mountFuse, openFuseDevice } from '../../replication/fuse/mount.js';
import type { LossyAnswer, LossyCommand, LossyStats } from './control.js';
import { LOSSY_STAT_SLOTS, LossyStat, SYNC_WANTED, type LossyWorkerConfig, type LossyWorkerMessage } from './worker.js';

/**
 * The lossy disk server process: `node main.js '<LossyServerConfig as JSON>'`, started by the lab (lab-disk.ts),
 * detached, in the machine's namespaces. It mounts its FUSE filesystem at `mountpoint` inside the host's mount
 * namespace (`nsenter -t <holder> -m mount …`), so only that host sees it; the server itself never enters the
 * namespace and never touches the mount (a sync's STATFS is sent by a child `nsenter … stat -f`).
 *
 * Contract:
 * - stdout carries one line: `ready` once the kernel's INIT is answered and the control socket listens, or
 *   `error: …` before exiting 1. Everything else goes to stderr (the lab points it at a log file).
 * - Its memory is the pending state: SIGKILL is the power loss. It exits by itself when the mount goes away
 *   (unmounted, aborted, or the host's mount namespace freed).
 */
export interface LossyServerConfig {
  /** the durable tree (the node's `<lab dir>/<node>/root/<dir>`) */
  backing: string;
  /** staging slots, emptied at start */
  staging: string;
  /** where the host sees the disk (the private dir's path), inside the holder's mount namespace */
  mountpoint: string;
  holderPid: number;
  /** control socket path */
  socket: string;
  /** shown as the mount's source: `lossy:<name>` */
  name: string;
  pendingLimitBytes: number;
}

const log = (msg: string) => {
  try {
    fs.writeSync(2, `${new Date().toISOString()} ${msg}\n`);
  } catch {
    // no log file: nothing to do
  }
};

function say(line: string): void {
  try {
    fs.writeSync(1, `${line}\n`);
  } catch {
    // the lab stopped listening
  }
}

async function main(cfg: LossyServerConfig): Promise<void> {
  const via = ['nsenter', '-t', String(cfg.holderPid), '-m', '--'];
  const fd = openFuseDevice();
  await mountFuse(fd, cfg.mountpoint, { fsname: `lossy:${cfg.name}`, subtype: 'tandem-lossy', via });
  const stats = new SharedArrayBuffer(LOSSY_STAT_SLOTS * 8);
  const control = new SharedArrayBuffer(4);
  let synced = 0;
  const syncWaiters = new Set<() => void>();
  const workerData: LossyWorkerConfig = {
    tandemLossyWorker: true, fd, backing: cfg.backing, staging: cfg.staging, maxWrite: 1 << 20,
    pendingLimitBytes: cfg.pendingLimitBytes, entryTimeout: 1, attrTimeout: 1, stats, control,
  };
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('FUSE INIT did not arrive within 10 s')), 10_000);
    worker.on('message', (m: LossyWorkerMessage) => {
      if (m.type === 'log') log(m.msg);
      else if (m.type === 'ready') {
        clearTimeout(timer);
        log(`serving ${cfg.backing} at ${cfg.mountpoint} (FUSE 7.${m.minor}, limit ${cfg.pendingLimitBytes} pending bytes)`);
        resolve();
      } else if (m.type === 'synced') {
        synced = m.seq;
        for (const w of syncWaiters) w();
      } else if (m.type === 'stopped') log(`FUSE worker stopped: ${m.reason}`);
    });
    worker.on('error', (err) => log(`FUSE worker failed: ${err.stack ?? err.message}`));
    worker.on('exit', () => {
      clearTimeout(timer);
      reject(new Error('the FUSE worker stopped before INIT'));
      process.exit(0);
    });
  });
  await ready;

  const counters = new Float64Array(stats);
  const ctl = new Int32Array(control);
  const statsNow = (): LossyStats =>
    Object.fromEntries(Object.entries(LossyStat).map(([k, i]) => [k, counters[i]!])) as unknown as LossyStats;
  let syncs: Promise<void> = Promise.resolve();
  const syncAll = async (): Promise<void> => {
    const seq = Atomics.add(ctl, SYNC_WANTED, 1) + 1;
    const done = new Promise<void>((resolve) => {
      const check = () => {
        if (synced - seq < 0) return;
        syncWaiters.delete(check);
        resolve();
      };
      syncWaiters.add(check);
      check();
    });
    // any request wakes the worker, which syncs before answering it; STATFS always reaches the server
    const r = await run('nsenter', [...via.slice(1, -1), '--', 'stat', '-f', '--', cfg.mountpoint], { reject: false, timeoutMs: 60_000 });
    const timeout = new Promise<never>((_, reject) => {
      setTimeout(() => reject(new Error(`sync did not finish (stat -f exited ${r.code}: ${r.stderr.trim()})`)), 60_000).unref();
    });
    await Promise.race([done, timeout]);
  };
  const answer = async (cmd: LossyCommand): Promise<LossyAnswer<LossyCommand>> => {
    if (cmd === 'stats') return { ok: true, stats: statsNow() };
    if (cmd === 'sync') {
      syncs = syncs.catch(() => {}).then(syncAll);
      await syncs;
      return { ok: true, syncAlls: counters[LossyStat.syncAlls]! };
    }
    return { ok: false, error: `unknown command ${String(cmd)}` };
  };
  fs.rmSync(cfg.socket, { force: true });
  const server = net.createServer((conn) => {
    let buf = '';
    conn.on('error', () => {});
    conn.on('data', (d) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let cmd: LossyCommand;
        try {
          cmd = (JSON.parse(line) as { cmd: LossyCommand }).cmd;
        } catch {
          conn.write(`${JSON.stringify({ ok: false, error: 'not JSON' })}\n`);
          continue;
        }
        void answer(cmd).then(
          (a) => conn.write(`${JSON.stringify(a)}\n`),
          (err: Error) => conn.write(`${JSON.stringify({ ok: false, error: err.message })}\n`),
        );
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.socket, resolve);
  });
  say('ready');
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as LossyServerConfig;
main(cfg).catch((err: Error) => {
  log(`lossy disk server failed: ${err.stack ?? err.message}`);
  say(`error: ${err.message.split('\n')[0]}`);
  process.exit(1);
});

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { listModules, loadCluster } from '../config/load.js';
import { localIPv4Addrs, whoami } from '../config/whoami.js';
import { deriveKey, KEY_BYTES, type KeyPurpose } from '../daemon/key.js';
import type { StatusView } from '../daemon/views.js';
import { UserError } from '../errors.js';
import { homePaths, type Home } from '../home.js';
import { formatCommand, type RunFn } from '../platform/exec.js';

/**
 * `tandem snapshot`: one .tar.gz for support with what this node knows (README "Support snapshot").
 *
 * Contract:
 * - Never the cluster key: `cluster.key` is never read into the archive, and every member is scanned for the key and
 *   its sub-keys (`deriveKey`) in each encoding tandem stores or could print them in (raw bytes, hex lower and upper
 *   case, base64, base64url); any occurrence is replaced by `[cluster key removed]` and the member is named in
 *   `redacted`.
 * - An outside command (or the daemon) that fails is recorded (`failed`, and `commands/<name>.failed.txt` in the
 *   archive) and never aborts the snapshot. Only a problem with the output file itself is an error.
 * - The output file is created with mode 0600 and never replaces an existing file (UserError), even when another
 *   process creates it meanwhile: it is written aside and hard-linked into place.
 * - With `module`, only that module's files (config, scripts, state, log, status) plus the node-wide ones
 *   (cluster.xml, daemon.log, boot counter, network, mounts, kernel log, versions).
 */
export interface SnapshotSources {
  /** outside commands (platform/exec.ts `run`) */
  run: RunFn;
  /** `status --json` of the local daemon (for one module or all); null when no daemon runs */
  status(module?: string): Promise<StatusView | null>;
  /** files outside the home; defaults are the real ones */
  mountinfo?: string;
  osRelease?: string;
  /** the moment of the snapshot (names the file) */
  now?: Date;
}

export interface SnapshotOptions {
  module?: string;
  /** where to write; default ./tandem-snapshot-<node>-<UTC timestamp>.tar.gz */
  file?: string;
  tandemVersion: string;
}

export interface SnapshotMember {
  name: string;
  size: number;
  /** the file was larger than the limit: only its end is in the archive */
  truncated?: boolean;
}

export interface FailedCommand {
  command: string;
  /** null: not started (not installed), timed out or killed */
  exitCode: number | null;
  stderr: string;
}

export interface SnapshotResult {
  file: string;
  node: string;
  module: string | null;
  /** whether the daemon answered `status`; when not, `daemon/NO-STATUS.txt` says why (none runs, or its error) */
  daemon: boolean;
  members: SnapshotMember[];
  failed: FailedCommand[];
  /** members in which the cluster key (or a sub-key) was found and replaced */
  redacted: string[];
}

/** Logs keep their last 16 MiB, other files their last 4 MiB. */
export const MAX_LOG_BYTES = 16 * 1024 * 1024;
export const MAX_FILE_BYTES = 4 * 1024 * 1024;
const DMESG_LINES = 500;
const COMMAND_TIMEOUT_MS = 15_000;
export const KEY_REMOVED = '[cluster key removed]';

/** The outside commands of every snapshot: archive name → argv. */
export const SNAPSHOT_COMMANDS: { name: string; argv: string[]; tail?: number }[] = [
  { name: 'ip-addr', argv: ['ip', 'addr'] },
  { name: 'ip-route', argv: ['ip', 'route'] },
  { name: 'ip-link-stats', argv: ['ip', '-s', 'link'] },
  { name: 'nft-ruleset', argv: ['nft', 'list', 'ruleset'] },
  { name: 'dmesg-tail', argv: ['dmesg'], tail: DMESG_LINES },
];

export function snapshotTimestamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
}

export async function takeSnapshot(home: Home, src: SnapshotSources, o: SnapshotOptions): Promise<SnapshotResult> {
  const installed = listModules(home);
  if (o.module !== undefined && !installed.includes(o.module) && !(await exists(homePaths.moduleLog(home, o.module)))) {
    throw new UserError(`module ${o.module} is not installed on this node and has no log.`,
      `installed modules: ${installed.join(', ') || 'none'}; leave out -m to take everything`);
  }
  const failed: FailedCommand[] = [];
  let status: StatusView | null = null;
  let daemonError: string | null = null;
  try {
    status = await src.status(o.module);
  } catch (e) {
    daemonError = (e as Error).message;
    failed.push({ command: `tandem status --json${o.module ? ` -m ${o.module}` : ''}`, exitCode: null, stderr: daemonError });
  }
  const node = status?.node ?? nodeName(home);
  const now = src.now ?? new Date();
  const base = `tandem-snapshot-${node}-${snapshotTimestamp(now)}`;
  const file = path.resolve(o.file ?? `${base}.tar.gz`);
  if (await exists(file)) throw refuseOverwrite(file);
  await fs.access(path.dirname(file)).catch(() => {
    throw new UserError(`cannot write ${file}: directory ${path.dirname(file)} does not exist.`, 'give a FILE in an existing directory');
  });

  const staging = await fs.mkdtemp(path.join(os.tmpdir(), 'tandem-snapshot-'));
  const root = path.join(staging, base);
  const members: SnapshotMember[] = [];
  const redacted: string[] = [];
  const needles = await keyNeedles(homePaths.clusterKey(home));
  const put = async (name: string, data: Buffer | string, truncated = false) => {
    let buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const clean = scrub(buf, needles);
    if (clean !== buf) redacted.push(name);
    buf = clean;
    const dest = path.join(root, name);
    await fs.mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
    await fs.writeFile(dest, buf, { mode: 0o600 });
    members.push({ name, size: buf.length, ...(truncated ? { truncated } : {}) });
  };
  const putFile = async (name: string, from: string, limit = MAX_FILE_BYTES) => {
    const r = await readTail(from, limit);
    if (r) await put(name, r.data, r.truncated);
  };
  const putTree = async (name: string, from: string) => {
    for (const rel of await regularFiles(from)) await putFile(path.join(name, rel), path.join(from, rel));
  };

  try {
    await fs.mkdir(root, { mode: 0o700 });
    const modules = o.module ? [o.module] : installed;
    const mine = (entry: string) => !o.module || entry.startsWith(`${o.module}.`);

    await putFile('home/cluster.xml', homePaths.clusterXml(home));
    for (const m of modules) {
      await putFile(`home/modules/${m}/userconfig.xml`, homePaths.userconfig(home, m));
      await putTree(`home/modules/${m}/bin`, homePaths.scriptsDir(home, m));
    }
    const stateDir = path.dirname(homePaths.stateFile(home, 'x'));
    for (const e of await entries(stateDir)) {
      if (e.name !== 'boot' && !mine(e.name)) continue;
      if (e.isDirectory()) await putTree(`home/state/${e.name}`, path.join(stateDir, e.name));
      else if (e.isFile()) await putFile(`home/state/${e.name}`, path.join(stateDir, e.name));
    }
    for (const e of await entries(home.runDir)) {
      if (e.isFile() && mine(e.name)) await putFile(`run/${e.name}`, path.join(home.runDir, e.name));
    }
    const logDir = path.dirname(homePaths.daemonLog(home));
    for (const e of await entries(logDir)) {
      if (e.isFile() && (e.name.startsWith('daemon.') || mine(e.name))) await putFile(`home/log/${e.name}`, path.join(logDir, e.name), MAX_LOG_BYTES);
    }

    if (status) {
      await put('daemon/status.json', `${JSON.stringify(status, null, 2)}\n`);
      for (const m of status.modules) {
        await put(`daemon/modules/${m.module}/resources.json`, `${JSON.stringify(m.resources, null, 2)}\n`);
        await put(`daemon/modules/${m.module}/replication.json`,
          `${JSON.stringify({ replication: m.replication ?? null, reintegration: m.reintegration ?? null }, null, 2)}\n`);
      }
      for (const f of status.farms ?? []) await put(`daemon/modules/${f.module}/resources.json`, `${JSON.stringify(f.resources, null, 2)}\n`);
    } else {
      await put('daemon/NO-STATUS.txt', daemonError
        ? `\`tandem status --json\` failed: ${daemonError}\n`
        : `no tandem daemon was running on ${node} when this snapshot was taken (${now.toISOString()}): it has no status.\n`);
    }

    for (const c of SNAPSHOT_COMMANDS) {
      const command = formatCommand(c.argv[0]!, c.argv.slice(1));
      try {
        const r = await src.run(c.argv[0]!, c.argv.slice(1), { reject: false, timeoutMs: COMMAND_TIMEOUT_MS });
        if (r.code === 0) {
          await put(`commands/${c.name}.txt`, `$ ${command}\n${c.tail ? tailLines(r.stdout, c.tail) : r.stdout}\n`);
          continue;
        }
        failed.push({ command, exitCode: r.code, stderr: r.stderr });
      } catch (e) {
        failed.push({ command, exitCode: (e as { exitCode?: number | null }).exitCode ?? null, stderr: (e as { stderr?: string }).stderr || (e as Error).message });
      }
      const f = failed.at(-1)!;
      await put(`commands/${c.name}.failed.txt`, `$ ${command}\nexit code: ${f.exitCode ?? 'none (not started, timed out or killed)'}\nstderr:\n${f.stderr}\n`);
    }
    await putFile('system/mountinfo.txt', src.mountinfo ?? '/proc/self/mountinfo');
    const osRelease = (await readTail(src.osRelease ?? '/etc/os-release', MAX_FILE_BYTES))?.data.toString('utf8') ?? '(no /etc/os-release)\n';
    await put('system/versions.txt', [
      `tandem ${o.tandemVersion}`,
      `node ${process.version}`,
      `kernel ${os.type()} ${os.release()} ${os.version()} ${os.arch()}`,
      `hostname ${os.hostname()}`,
      `taken ${now.toISOString()}`,
      '',
      '/etc/os-release:',
      osRelease,
    ].join('\n'));

    const result: SnapshotResult = { file, node, module: o.module ?? null, daemon: status !== null, members, failed, redacted };
    await put('manifest.json', `${JSON.stringify({ ...result, file: path.basename(file) }, null, 2)}\n`);
    await writeArchive(staging, base, file);
    return result;
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

/** The node's name: from cluster.xml as the daemon finds it, else the host name (a snapshot works without a cluster). */
function nodeName(home: Home): string {
  try {
    return whoami(loadCluster(home), localIPv4Addrs(), process.env.TANDEM_NODE || undefined);
  } catch {
    return os.hostname();
  }
}

function refuseOverwrite(file: string): UserError {
  return new UserError(`${file} already exists; a snapshot never replaces a file.`, 'give another FILE, or move the old snapshot away first');
}

/** tar.gz of `staging/base`, written aside with mode 0600 and linked into place (fails if `file` appeared meanwhile). */
async function writeArchive(staging: string, base: string, file: string): Promise<void> {
  const aside = `${file}.partial-${process.pid}`;
  try {
    await tar.c({ gzip: true, file: aside, cwd: staging, portable: true }, [base]);
    await fs.chmod(aside, 0o600);
    await fs.link(aside, file).catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'EEXIST' ? refuseOverwrite(file) : new UserError(`cannot write ${file}: ${e.message}`, 'give a FILE in a directory you can write to');
    });
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot write ${file}: ${(e as Error).message}`, 'give a FILE in a directory you can write to, with free space');
  } finally {
    await fs.rm(aside, { force: true });
  }
}

/**
 * What must never be in a snapshot: the key file's content as written (hex), and the 32 key bytes and each sub-key in
 * raw, hex (both cases), base64 and base64url form. Empty when there is no readable key.
 */
export async function keyNeedles(keyFile: string): Promise<Buffer[]> {
  const text = await fs.readFile(keyFile, 'utf8').catch(() => null);
  if (text === null || text.trim() === '') return [];
  const hex = text.trim();
  // the file as it is, whatever it holds (long enough not to match ordinary text)
  const out: Buffer[] = hex.length >= 16 ? [Buffer.from(hex, 'utf8')] : [];
  if (/^[0-9a-fA-F]+$/.test(hex) && hex.length === KEY_BYTES * 2) {
    const key = Buffer.from(hex, 'hex');
    const purposes: KeyPurpose[] = ['heartbeat', 'control', 'replication'];
    for (const k of [key, ...purposes.map((p) => deriveKey(key, p))]) out.push(...keyEncodings(k));
  }
  return out;
}

/** The forms in which `k` could appear in a file. */
export function keyEncodings(k: Buffer): Buffer[] {
  const b64 = k.toString('base64');
  return [k, k.toString('hex'), k.toString('hex').toUpperCase(), b64, b64.replace(/=+$/, ''), k.toString('base64url')]
    .map((s) => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s));
}

/** `buf` with every occurrence of a needle replaced by KEY_REMOVED; the same object when there was none. */
export function scrub(buf: Buffer, needles: Buffer[]): Buffer {
  let out = buf;
  for (const n of needles) {
    if (n.length === 0 || out.indexOf(n) < 0) continue;
    const parts: Buffer[] = [];
    let at = 0;
    for (let i = out.indexOf(n); i >= 0; i = out.indexOf(n, at)) {
      parts.push(out.subarray(at, i), Buffer.from(KEY_REMOVED));
      at = i + n.length;
    }
    parts.push(out.subarray(at));
    out = Buffer.concat(parts);
  }
  return out;
}

function tailLines(text: string, n: number): string {
  const lines = text.split('\n');
  return lines.slice(-n).join('\n');
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

async function entries(dir: string) {
  return (await fs.readdir(dir, { withFileTypes: true }).catch(() => [])).sort((a, b) => a.name.localeCompare(b.name));
}

/** Regular files under `dir` (relative paths), not following symlinks. */
async function regularFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await entries(dir)) {
    if (e.isDirectory()) out.push(...(await regularFiles(path.join(dir, e.name))).map((r) => path.join(e.name, r)));
    else if (e.isFile()) out.push(e.name);
  }
  return out;
}

/** The file's last `limit` bytes; null when it cannot be read (gone, not a regular file). */
async function readTail(file: string, limit: number): Promise<{ data: Buffer; truncated: boolean } | null> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch {
    return null;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return null;
    if (st.size === 0 && file.startsWith('/proc/')) return { data: await fh.readFile(), truncated: false };
    const len = Math.min(st.size, limit);
    const data = Buffer.alloc(len);
    const { bytesRead } = await fh.read(data, 0, len, st.size - len);
    return { data: data.subarray(0, bytesRead), truncated: st.size > limit };
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}

/** What `tandem snapshot` prints: the file, what is missing from it and why, and a warning if a key had to be removed. */
export function formatSnapshot(r: SnapshotResult): string {
  const bytes = r.members.reduce((s, m) => s + m.size, 0);
  const lines = [`wrote ${r.file} (${r.members.length} files, ${(bytes / 1024).toFixed(0)} KiB before compression)`];
  if (!r.daemon) lines.push('  no status from the daemon: the archive has none (daemon/NO-STATUS.txt says why)');
  for (const f of r.failed) lines.push(`  not collected: ${f.command} (exit ${f.exitCode ?? 'none'}${f.stderr ? `: ${f.stderr.trim().split('\n')[0]}` : ''})`);
  for (const m of r.members.filter((x) => x.truncated)) lines.push(`  only the end of ${m.name} (${m.size} bytes) is included`);
  if (r.redacted.length) {
    lines.push(`  warning: the cluster key was found in ${r.redacted.join(', ')} and replaced by "${KEY_REMOVED}" in the archive. ` +
      'Remove it from those files on the node: anyone who can read them can join the cluster.');
  }
  lines.push('Send this file to support. It holds no cluster key.');
  return lines.join('\n');
}

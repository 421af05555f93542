import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { ExternalError, UserError } from '../errors.js';
import { waitFor } from './measure.js';
import {
  cmdline,
  holderMarker,
  ip,
  isAlive,
  killNetnsProcesses,
  killPid,
  mounts,
  netnsInode,
  nsenterArgv,
  pidNetnsInode,
  run,
  startHolder,
  type RunResult,
} from './netns.js';
import { lossyRequest, type LossyStats } from './lossy/control.js';
import { dropLossyMount, findLossyServers, killLossyServer, lossyFiles, lossyMarker, lossyMountIds, startLossyDisk } from './lossy/lab-disk.js';
import {
  allNamespaces,
  bridgeName,
  hostInterfaces,
  hostSpec,
  lanSpec,
  lossyDirs,
  nodeNames,
  nsName,
  portName,
  resolveSpec,
  type LabSpec,
} from './spec.js';
import { labDirOf, loadStateFromDir, markCreatedDir, saveState, unmarkCreatedDir, type LabState } from './state.js';
import { teardownLab, type DownOptions, type DownReport } from './teardown.js';

export { downAll, listLabs, type DownReport, type DownOptions, type LabInfo } from './teardown.js';
export type { LabSpec, HostSpec, LanSpec, HostRole } from './spec.js';
export type { LossyStats } from './lossy/control.js';

/** One lossy disk of a node, as `lossyStats` reports it. */
export interface LossyDiskStats extends LossyStats {
  dir: string;
}

export interface ExecOptions {
  /** Added to the inherited environment. For node hosts TANDEM_HOME, TANDEM_RUN_DIR and TANDEM_NODE are preset. */
  env?: Record<string, string | undefined>;
  input?: string;
  /** Throw ExternalError on a non-zero exit or timeout. Default true. */
  reject?: boolean;
  timeoutMs?: number;
  /** Working directory inside the host. Default `<lab dir>/<host>`. */
  cwd?: string;
}

/** stdout and stderr exactly as printed (final newline kept); `code` is -1 when killed by a signal or the timeout. */
export type ExecResult = RunResult;

export interface HttpResult {
  ok: boolean;
  status?: number;
  body?: string;
  error?: string;
}

export interface CreateOptions {
  /** Tear down what was built when create fails. Default true; false leaves it for `attach(prefix).down()`. */
  teardownOnFailure?: boolean;
}

/** Paths of a node on the real filesystem. */
export interface NodePaths {
  /**
   * Root of the node's own copies of `spec.privateDirs` ("its disk"). For a dir on a lossy disk it holds only what is
   * durable (what a power-off would leave); the node's latest view is read through `exec`.
   */
  root: string;
  /** TANDEM_HOME. */
  home: string;
  /** TANDEM_RUN_DIR, wiped by `boot`. */
  run: string;
  /** The daemon's stdout and stderr, appended across boots. */
  daemonOut: string;
}

/**
 * A set of hosts built from network namespaces on one Linux machine: one namespace per host plus `<prefix>-br`, which
 * holds one bridge per LAN; every host has a veth pair per LAN it is on. Each host also has a holder process owning a
 * private mount namespace, in which node hosts see their own copy of `spec.privateDirs`. Everything "on a host" runs
 * through `nsenter -t <holder> -m -n`.
 *
 * Power and network faults model real ones: `poweroff` loses RAM (processes, run dir, addresses added at run time,
 * mounts made at run time, ARP cache) but keeps the disk (home and private dirs). The machine's page cache survives
 * too, so by default a power-off keeps even what a node never synced; private dirs on lossy disks
 * (`spec.lossyDisks`, docs/design/lossy-disk.md) lose it, as a real power loss may. `cut` isolates a host on one LAN
 * at the switch (nothing passes, but its interface keeps its carrier: a network failure, as in the seeds' isolation
 * scenarios); `unplug` pulls its cable on one LAN (its interface loses carrier, as a dead NIC or cable).
 *
 * To run something on a host: `lab.exec('node1', ['ip', 'addr'])`; the tandem CLI on a node: `lab.cli('node1',
 * ['status', '--json'])` (TANDEM_HOME, TANDEM_RUN_DIR and TANDEM_NODE are set for node hosts). From a shell:
 * `nsenter -t <holder pid> -m -n -- <cmd>` with the holder PID from `<dir>/lab.json` (`holders`).
 *
 * State lives in `<dir>/lab.json` and is re-read by every method, so a `Lab` from `attach` in another process sees
 * the same lab; one process should drive a lab at a time. Tests must call `down()` in a `finally`.
 */
export class Lab {
  readonly spec: LabSpec;
  readonly dir: string;
  private signalHandler?: (sig: NodeJS.Signals) => void;

  private constructor(spec: LabSpec) {
    this.spec = spec;
    this.dir = spec.dir;
  }

  get prefix(): string {
    return this.spec.prefix;
  }

  /**
   * Builds a lab from `spec` (missing fields from the defaults; see `defaultSpec`). Nothing runs on the hosts yet:
   * call `spawnDaemon` for each node. On failure everything built so far is torn down (see CreateOptions) and the
   * error is rethrown.
   */
  static async create(partial: Partial<LabSpec> = {}, opts: CreateOptions = {}): Promise<Lab> {
    const spec = resolveSpec(partial);
    const clash = allNamespaces(spec).filter((n) => netnsInode(n) !== undefined);
    if (clash.length) {
      throw new UserError(`namespaces ${clash.join(', ')} already exist`, `Pick another prefix, or remove the old lab with Lab.attach('${spec.prefix}').down().`);
    }
    const ownsDir = !fs.existsSync(spec.dir);
    fs.mkdirSync(spec.dir, { recursive: true });
    const state: LabState = {
      version: 1,
      spec,
      createdAt: new Date().toISOString(),
      ownerPid: process.pid,
      ownsDir,
      namespaces: [],
      holders: {},
      baseMounts: {},
      daemons: {},
      poweredOff: [],
      cuts: {},
      createdDirs: [],
      complete: false,
    };
    saveState(state);
    const lab = new Lab(spec);
    try {
      await lab.build(state);
    } catch (e) {
      if (opts.teardownOnFailure ?? true) {
        const report = await lab.down();
        if (report.problems.length && e instanceof Error) e.message += `\n(teardown after the failed create left: ${report.problems.join('; ')})`;
      }
      throw e;
    }
    return lab;
  }

  /** Opens a lab created by this or another process. Throws UserError when no state is recorded for `prefix`. */
  static async attach(prefix: string): Promise<Lab> {
    const state = loadStateFromDir(labDirOf(prefix));
    return new Lab(state.spec);
  }

  private async build(state: LabState): Promise<void> {
    const { spec } = this;
    for (const ns of allNamespaces(spec)) {
      state.namespaces.push(ns);
      saveState(state);
      await ip('netns', 'add', ns);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    const brNs = nsName(spec, 'br');
    for (const lan of spec.lans) {
      const br = bridgeName(spec, lan.name);
      await ip('-n', brNs, 'link', 'add', br, 'type', 'bridge', 'ageing_time', '0', 'stp_state', '0');
      await ip('-n', brNs, 'link', 'set', br, 'up');
      for (const host of Object.keys(lan.addrs)) {
        const port = portName(spec, host, lan.name);
        await ip('-n', brNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', lan.ifname, 'netns', nsName(spec, host));
        await ip('-n', brNs, 'link', 'set', port, 'master', br, 'up');
      }
    }
    for (const h of spec.hosts) {
      state.holders[h.name] = await startHolder(nsName(spec, h.name));
      saveState(state);
      fs.mkdirSync(path.join(this.dir, h.name), { recursive: true });
      await this.applyBaseNet(h.name, state);
    }
    for (const node of nodeNames(spec)) {
      const p = this.paths(node);
      for (const d of [p.root, p.home, p.run]) fs.mkdirSync(d, { recursive: true });
      const lossy = new Set(lossyDirs(spec).map((l) => l.dir));
      for (const dir of spec.privateDirs) {
        this.ensureMountPoint(dir, state);
        const src = path.join(p.root, dir);
        fs.mkdirSync(src, { recursive: true });
        if (!lossy.has(dir)) await run('nsenter', ['-t', String(state.holders[node]), '-m', '--', 'mount', '--bind', src, dir]);
      }
      await this.startLossyDisks(node, state);
    }
    for (const h of spec.hosts) state.baseMounts[h.name] = mounts(state.holders[h.name]!).map((m) => m.id);
    state.complete = true;
    saveState(state);
  }

  /** Creates a missing mount point on the real filesystem, recording each directory made (marker first). */
  private ensureMountPoint(dir: string, state: LabState): void {
    const missing: string[] = [];
    for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      markCreatedDir(d);
      state.createdDirs.push(d);
      saveState(state);
      try {
        fs.mkdirSync(d);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        unmarkCreatedDir(d);
        state.createdDirs.pop();
        saveState(state);
        throw new UserError(`cannot create mount point ${d}: ${(e as Error).message}`, 'Fix the path in privateDirs.');
      }
    }
  }

  private load(): LabState {
    try {
      return loadStateFromDir(this.dir);
    } catch {
      throw new UserError(`lab ${this.prefix} is down (no ${path.join(this.dir, 'lab.json')})`, 'Create a new lab with Lab.create().');
    }
  }

  /** Namespace name of a host (`br` for the bridges). */
  ns(host: string): string {
    if (host !== 'br') hostSpec(this.spec, host);
    return nsName(this.spec, host);
  }

  holderPid(host: string): number {
    hostSpec(this.spec, host);
    const pid = this.load().holders[host];
    if (pid === undefined || cmdline(pid)?.[0] !== holderMarker(this.ns(host))) {
      throw new UserError(`host ${host} of lab ${this.prefix} has no live holder process`, 'The lab is broken: tear it down with down() and create a new one.');
    }
    return pid;
  }

  paths(node: string): NodePaths {
    const base = path.join(this.dir, node);
    return { root: path.join(base, 'root'), home: path.join(base, 'home'), run: path.join(base, 'run'), daemonOut: path.join(base, 'daemon.out') };
  }

  /** TANDEM_HOME, TANDEM_RUN_DIR and TANDEM_NODE of a node. */
  nodeEnv(node: string): Record<string, string> {
    const p = this.paths(node);
    return { TANDEM_HOME: p.home, TANDEM_RUN_DIR: p.run, TANDEM_NODE: node };
  }

  isPoweredOff(host: string): boolean {
    return this.load().poweredOff.includes(host);
  }

  /** The argv that runs `argv` on `host` (net + mount namespaces), for callers that spawn processes themselves. */
  hostArgv(host: string, argv: string[], cwd = path.join(this.dir, host)): string[] {
    return nsenterArgv(this.holderPid(host), cwd, argv);
  }

  /** Runs `argv` on `host` and waits for it. Refused (UserError) while the host is powered off. */
  async exec(host: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.assertPoweredOn(host);
    const env = { ...(hostSpec(this.spec, host).role === 'node' ? this.nodeEnv(host) : {}), ...opts.env };
    const [file, ...args] = this.hostArgv(host, argv, opts.cwd);
    const r = await run(file!, args, { env, input: opts.input, timeoutMs: opts.timeoutMs, reject: false });
    if ((opts.reject ?? true) && (r.code !== 0 || r.timedOut)) {
      const cmd = `[${host}] ${argv.join(' ')}`;
      throw new ExternalError(cmd, r.timedOut ? null : r.code, r.stderr, r.timedOut ? `command timed out after ${opts.timeoutMs} ms: ${cmd}` : undefined);
    }
    return r;
  }

  /** Runs the tandem CLI (`spec.cliCommand` + `args`) on a node, with the node's environment. */
  async cli(node: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(node, [...this.spec.cliCommand, ...args], opts);
  }

  /** A host's base address on a LAN (no prefix length), e.g. `addr('witness')` → `198.51.100.254`. */
  addr(host: string, lan = 'default'): string {
    const a = lanSpec(this.spec, lan).addrs[host];
    if (a === undefined) throw new UserError(`${host} is not on LAN ${lan}`, `Hosts on ${lan}: ${Object.keys(lanSpec(this.spec, lan).addrs).join(', ')}.`);
    return a;
  }

  private assertPoweredOn(host: string): void {
    hostSpec(this.spec, host);
    if (this.load().poweredOff.includes(host)) {
      throw new UserError(`host ${host} is powered off`, `Boot it first with boot('${host}'); its disk is readable at ${path.join(this.dir, host)}.`);
    }
  }

  /**
   * Starts the node's daemon (`spec.daemonCommand`) on the node, detached, with the node's env plus `spec.daemonEnv`,
   * cwd `<dir>/<node>`, output appended to `paths(node).daemonOut`. Returns and records its PID. Refused while the
   * node is powered off or its recorded daemon is still alive.
   */
  spawnDaemon(node: string): number {
    if (hostSpec(this.spec, node).role !== 'node') throw new UserError(`${node} is not a node`, `Start daemons on ${nodeNames(this.spec).join(', ')}.`);
    this.assertPoweredOn(node);
    const state = this.load();
    const old = state.daemons[node];
    if (old !== undefined && this.daemonPid(node) !== undefined) {
      throw new UserError(`${node} already runs a daemon (pid ${old})`, `Stop it with killDaemon('${node}') first.`);
    }
    const p = this.paths(node);
    fs.appendFileSync(p.daemonOut, `--- ${new Date().toISOString()} spawn ${this.spec.daemonCommand.join(' ')}\n`);
    // The redirection is made by the host's shell, which then execs the daemon: the PID is the daemon's, and its
    // output does not pass through (nor depend on) this process.
    const redirect = ['sh', '-c', 'out=$1; shift; exec "$@" >>"$out" 2>&1', 'sh', p.daemonOut, ...this.spec.daemonCommand];
    const [file, ...args] = this.hostArgv(node, redirect);
    const child = execa(file!, args, {
      detached: true,
      cleanup: false,
      reject: false,
      stdio: 'ignore',
      env: { ...this.spec.daemonEnv, ...this.nodeEnv(node) },
    });
    child.catch(() => undefined);
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new ExternalError(this.spec.daemonCommand.join(' '), null, `could not start the daemon on ${node}; see ${p.daemonOut}`);
    state.daemons[node] = pid;
    saveState(state);
    return pid;
  }

  /** Sends `signal` to the node's recorded daemon (only if it still runs in that node). Returns whether it was sent. */
  killDaemon(node: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
    const pid = this.load().daemons[node];
    if (pid === undefined || pidNetnsInode(pid) !== netnsInode(this.ns(node))) return false;
    killPid(pid, signal);
    return true;
  }

  /** PID of the node's recorded daemon when it is alive, else undefined. */
  daemonPid(node: string): number | undefined {
    const pid = this.load().daemons[node];
    return pid !== undefined && isAlive(pid) && pidNetnsInode(pid) === netnsInode(this.ns(node)) ? pid : undefined;
  }

  /**
   * Pulls the plug of `host`: its links go down first (host and bridge side, so no FIN/RST leaves it), then every
   * process in its network namespace except the holder gets SIGKILL, then mounts made after create are detached,
   * then its lossy disks lose what was not durable (their servers are SIGKILLed and their mounts detached).
   * Disk (home, private dirs; on lossy disks only what was durable) is kept; `boot` restores the rest.
   */
  async poweroff(host: string): Promise<void> {
    const state = this.load();
    hostSpec(this.spec, host);
    if (!state.poweredOff.includes(host)) state.poweredOff.push(host);
    saveState(state);
    const ns = this.ns(host);
    const brNs = this.ns('br');
    for (const i of hostInterfaces(this.spec, host)) {
      await ip('-n', brNs, 'link', 'set', portName(this.spec, host, i.lan), 'down');
      await ip('-n', ns, 'link', 'set', i.ifname, 'down');
    }
    const holder = this.holderPid(host);
    const ino = netnsInode(ns);
    if (ino === undefined) throw new UserError(`namespace ${ns} is gone`, 'The lab is broken: tear it down with down() and create a new one.');
    const left = await killNetnsProcesses(new Set([ino]), new Set([holder]));
    if (left.length) throw new ExternalError(`kill -9 ${left.join(' ')}`, null, `processes of ${host} survived SIGKILL`);
    await run('ip', ['netns', 'exec', ns, 'ss', '-K'], { reject: false });
    await this.dropRuntimeMounts(host, holder, state.baseMounts[host] ?? []);
    await this.cutLossyPower(host, holder, state);
    delete state.daemons[host];
    saveState(state);
  }

  /**
   * Starts the lossy disks of a node (none unless `spec.lossyDisks`) on what their stores hold, and counts their
   * mounts as base mounts (kept by `dropRuntimeMounts`, taken down by `cutLossyPower`).
   */
  private async startLossyDisks(node: string, state: LabState): Promise<void> {
    const disks = lossyDirs(this.spec);
    if (hostSpec(this.spec, node).role !== 'node' || disks.length === 0) return;
    const holder = state.holders[node]!;
    // a poweroff that failed half-way may have left a server with pending data: it goes first, whatever happened
    await this.cutLossyPower(node, holder, state);
    const servers = ((state.lossyServers ??= {})[node] ??= {});
    for (const { dir, index } of disks) {
      const files = lossyFiles(path.join(this.dir, node), index);
      servers[index] = await startLossyDisk({
        marker: lossyMarker(this.ns(node), index), holderPid: holder, mountpoint: dir, backing: path.join(this.paths(node).root, dir),
        files, name: `${node}${dir}`, pendingLimitBytes: this.spec.lossyPendingLimitBytes,
      });
      saveState(state);
    }
    const base = new Set(state.baseMounts[node] ?? []);
    for (const id of lossyMountIds(holder)) base.add(id);
    if (state.baseMounts[node]) state.baseMounts[node] = [...base];
    saveState(state);
  }

  /** The power loss of a node's lossy disks: servers SIGKILLed (their memory is the pending state), mounts detached. */
  private async cutLossyPower(node: string, holder: number, state: LabState): Promise<void> {
    const disks = lossyDirs(this.spec);
    if (disks.length === 0) return;
    const servers = state.lossyServers?.[node] ?? {};
    // the recorded one, and any other found by its argv[0] (started by a process that died before recording it)
    const running = findLossyServers(`${this.ns(node)}:`);
    for (const { dir, index } of disks) {
      const marker = lossyMarker(this.ns(node), index);
      const pids = new Set([...(servers[index] !== undefined ? [servers[index]] : []), ...running.filter((r) => r.index === index).map((r) => r.pid)]);
      for (const pid of pids) {
        if (!(await killLossyServer(pid, marker))) throw new ExternalError(`kill -9 ${pid}`, null, `the lossy disk server of ${node}:${dir} survived SIGKILL`);
      }
      delete servers[index];
      saveState(state);
      await dropLossyMount(holder, dir);
    }
    const present = new Set(mounts(holder).map((m) => m.id));
    if (state.baseMounts[node]) state.baseMounts[node] = state.baseMounts[node].filter((id) => present.has(id));
    saveState(state);
  }

  /** The counters of each lossy disk of a running node (spec.lossyDisks), e.g. to see that nothing was written back. */
  async lossyStats(node: string): Promise<LossyDiskStats[]> {
    this.assertPoweredOn(node);
    const out: LossyDiskStats[] = [];
    for (const { dir, index } of lossyDirs(this.spec)) {
      const { stats } = await lossyRequest(lossyFiles(path.join(this.dir, node), index).socket, 'stats');
      out.push({ dir, ...stats });
    }
    return out;
  }

  /**
   * Makes everything on a node's lossy disks durable, as sync(2) would on a real disk (sync and syncfs on the node
   * do not reach a FUSE server, so they do not). A no-op without lossy disks.
   */
  async syncDisks(node: string): Promise<void> {
    this.assertPoweredOn(node);
    for (const { index } of lossyDirs(this.spec)) await lossyRequest(lossyFiles(path.join(this.dir, node), index).socket, 'sync');
  }

  private async dropRuntimeMounts(host: string, holder: number, base: number[]): Promise<void> {
    const keep = new Set(base);
    const extra = mounts(holder)
      .filter((m) => !keep.has(m.id))
      .sort((a, b) => b.mountPoint.length - a.mountPoint.length);
    for (const m of extra) {
      const r = await run('nsenter', ['-t', String(holder), '-m', '--', 'umount', '-l', m.mountPoint], { reject: false });
      if (r.code !== 0 && mounts(holder).some((x) => x.id === m.id)) {
        throw new ExternalError(`[${host}] umount -l ${m.mountPoint}`, r.code, r.stderr);
      }
    }
  }

  /**
   * Powers `host` on: wipes its run dir, starts its lossy disks on what was durable, restores its network to the base config (extra addresses, routes, links,
   * neighbours and nftables rules dropped; base addresses re-added; links up except cut bridge ports) and, for a node,
   * starts its daemon unless `daemon: false`. A host that is still on is powered off first (a hard reset). Sysctls
   * changed at run time are not reset.
   */
  async boot(host: string, opts: { daemon?: boolean } = {}): Promise<void> {
    const spec = hostSpec(this.spec, host);
    if (!this.isPoweredOff(host)) await this.poweroff(host);
    const state = this.load();
    if (spec.role === 'node') {
      const runDir = this.paths(host).run;
      fs.rmSync(runDir, { recursive: true, force: true });
      fs.mkdirSync(runDir, { recursive: true });
      await this.startLossyDisks(host, state);
    }
    state.poweredOff = state.poweredOff.filter((h) => h !== host);
    await this.applyBaseNet(host, state);
    saveState(state);
    if (spec.role === 'node' && (opts.daemon ?? true)) this.spawnDaemon(host);
  }

  /** Brings a host's network to its base configuration and its links up (bridge ports as cut or unplugged). */
  private async applyBaseNet(host: string, state: LabState): Promise<void> {
    const ns = nsName(this.spec, host);
    const brNs = nsName(this.spec, 'br');
    const ifs = hostInterfaces(this.spec, host);
    const soft = (...args: string[]) => run('ip', ['-n', ns, ...args], { reject: false });
    const links = JSON.parse(await ip('-n', ns, '-j', 'link', 'show')) as { ifname: string }[];
    const baseIfs = new Set(['lo', ...ifs.map((i) => i.ifname)]);
    for (const l of links) if (!baseIfs.has(l.ifname)) await soft('link', 'del', l.ifname);
    for (const ifname of baseIfs) {
      await ip('-n', ns, 'link', 'set', ifname, 'down');
      await ip('-n', ns, 'addr', 'flush', 'dev', ifname);
    }
    await soft('route', 'flush', 'table', 'main');
    await soft('neigh', 'flush', 'all');
    await run('ip', ['netns', 'exec', ns, 'nft', 'flush', 'ruleset'], { reject: false });
    await ip('-n', ns, 'link', 'set', 'lo', 'up'); // the kernel re-adds 127.0.0.1/8 and ::1
    for (const i of ifs) {
      await ip('-n', ns, 'addr', 'add', i.address, 'dev', i.ifname);
      await ip('-n', ns, 'link', 'set', i.ifname, 'up');
      await this.setPort(host, i.lan, state);
    }
  }

  /** A bridge port as the lab state says: on the bridge unless cut, up unless unplugged (or the host is off). */
  private async setPort(host: string, lan: string, state: LabState): Promise<void> {
    const port = portName(this.spec, host, lan);
    const brNs = this.ns('br');
    const cut = (state.cuts[lan] ?? []).includes(host);
    const down = state.poweredOff.includes(host) || (state.unplugged?.[lan] ?? []).includes(host);
    if (cut) await ip('-n', brNs, 'link', 'set', port, 'nomaster');
    else await ip('-n', brNs, 'link', 'set', port, 'master', bridgeName(this.spec, lan));
    await ip('-n', brNs, 'link', 'set', port, down ? 'down' : 'up');
  }

  /** Isolates `node` on `lan` at the switch (it keeps its carrier; nothing passes). All nodes of the LAN if none given. */
  async cut(lan: string, node?: string): Promise<void> {
    await this.setFault('cuts', lan, node, true);
  }

  /** Undoes `cut` for one LAN (and one node, or all). Powered-off hosts stay down. */
  async uncut(lan: string, node?: string): Promise<void> {
    await this.setFault('cuts', lan, node, false);
  }

  /** Pulls the cable of `node` on `lan`: its interface loses carrier (bridge side down). */
  async unplug(lan: string, node: string): Promise<void> {
    await this.setFault('unplugged', lan, node, true);
  }

  /** Plugs the cable of `node` on `lan` back in. */
  async plug(lan: string, node: string): Promise<void> {
    await this.setFault('unplugged', lan, node, false);
  }

  private async setFault(kind: 'cuts' | 'unplugged', lan: string, node: string | undefined, on: boolean): Promise<void> {
    const l = lanSpec(this.spec, lan);
    const hosts = node !== undefined ? [node] : nodeNames(this.spec).filter((n) => l.addrs[n] !== undefined);
    for (const h of hosts) {
      if (l.addrs[h] === undefined) throw new UserError(`${h} is not on LAN ${lan}`, `Hosts on ${lan}: ${Object.keys(l.addrs).join(', ')}.`);
    }
    const state = this.load();
    const faults = (state[kind] ??= {});
    const set = new Set(faults[lan] ?? []);
    for (const h of hosts) (on ? set.add(h) : set.delete(h));
    faults[lan] = [...set];
    saveState(state);
    for (const h of hosts) if (!state.poweredOff.includes(h)) await this.setPort(h, lan, state);
  }

  /** Clears every cut and unplugged cable: all links of powered-on hosts up and bridged. Powered-off hosts stay down. */
  async heal(): Promise<void> {
    const state = this.load();
    state.cuts = {};
    state.unplugged = {};
    saveState(state);
    for (const h of this.spec.hosts) {
      if (state.poweredOff.includes(h.name)) continue;
      for (const i of hostInterfaces(this.spec, h.name)) {
        await ip('-n', this.ns(h.name), 'link', 'set', i.ifname, 'up');
        await this.setPort(h.name, i.lan, state);
      }
    }
  }

  /** GET `url` with curl from `fromHost`. Never throws for HTTP or network failures: `ok` is true for 2xx only. */
  async httpGet(fromHost: string, url: string, timeoutMs: number): Promise<HttpResult> {
    const r = await this.exec(fromHost, ['curl', '-sS', '--max-time', (timeoutMs / 1000).toFixed(3), '-w', '\n%{http_code}', '--', url], {
      reject: false,
      timeoutMs: timeoutMs + 5000,
    });
    const cut = r.stdout.lastIndexOf('\n');
    const status = Number(r.stdout.slice(cut + 1));
    const body = cut >= 0 ? r.stdout.slice(0, cut) : '';
    if (r.code !== 0 || !(status > 0)) return { ok: false, error: r.stderr.trim() || `curl exited ${r.code}` };
    return { ok: status >= 200 && status < 300, status, body };
  }

  /** See `waitFor` in measure.ts. */
  async waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, intervalMs = 100): Promise<T> {
    return waitFor(what, fn, timeoutMs, intervalMs);
  }

  /**
   * Tears the lab down (see `teardownLab`): never throws, reports leftovers. Idempotent, and works on a lab whose
   * create failed half-way or whose parts were already removed.
   */
  async down(opts: DownOptions = {}): Promise<DownReport> {
    this.removeSignalHandlers();
    return teardownLab(this.prefix, this.dir, opts);
  }

  /**
   * For tests: on SIGINT/SIGTERM, tear the lab down and exit (130/143). Returns a function that unregisters it;
   * `down()` unregisters it too.
   */
  autoTeardownOnExit(): () => void {
    this.removeSignalHandlers();
    let stopping = false;
    // Stays registered while tearing down: a signal with no listener left would kill the process half-way (execa's
    // signal-exit re-raises the signal when it is the only listener).
    const handler = (sig: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      void teardownLab(this.prefix, this.dir).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    };
    this.signalHandler = handler;
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    return () => this.removeSignalHandlers();
  }

  private removeSignalHandlers(): void {
    if (!this.signalHandler) return;
    process.off('SIGINT', this.signalHandler);
    process.off('SIGTERM', this.signalHandler);
    this.signalHandler = undefined;
  }
}

/**
 * `tandem daemon`: the node's engine host. One per TANDEM_HOME. Owns the heartbeat sockets, the control socket,
 * one ModuleDriver per installed module, and the only timer (100 ms): modules tick on it and send their heartbeats
 * every pulse.
 *
 * SIGTERM/SIGINT end the daemon but leave applications, virtual IPs and the replication hosts serving replicated
 * directories as they are: the next daemon start reattaches to them (the run marker in TANDEM_RUN_DIR tells a daemon
 * restart from a reboot). For a clean
 * handover to the peer, stop the modules first (`tandem stop -m NAME`).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { listModules, loadCluster, loadModuleConfig } from '../config/load.js';
import type { ClusterConfig, FarmModuleConfig, MirrorModuleConfig, ModuleConfig } from '../config/types.js';
import { localIPv4Addrs, whoami } from '../config/whoami.js';
import type { AdminVerb } from '../engine/mirror/types.js';
import { UserError } from '../errors.js';
import { homePaths, type Home } from '../home.js';
import { realClock } from '../platform/clock/real.js';
import type { Clock } from '../platform/clock/types.js';
import { LinuxScriptRunner } from '../platform/scripts/linux.js';
import type { ScriptRunner } from '../platform/scripts/types.js';
import type { HeartbeatTransport } from '../platform/transport/types.js';
import { createUdpTransport } from '../platform/transport/udp.js';
import { LinuxVip } from '../platform/vip/linux.js';
import type { VipAdapter } from '../platform/vip/types.js';
import { LinuxWitness } from '../platform/witness/linux.js';
import type { WitnessChecker } from '../platform/witness/types.js';
import { HostedReplicator } from '../replication/host/client.js';
import { NoFilesReplicator } from '../replication/none.js';
import { moduleConflict } from '../config/userconfig.js';
import type { Replicator } from '../replication/types.js';
import { appliesWhileRunning } from './config-hash.js';
import { startControlServer, type ControlRequest, type ControlServer } from './control.js';
import { readKeyFile } from './key.js';
import { Logger } from './logger.js';
import { ModuleDriver, tandemEnv } from './module-driver.js';
import { createCheckers } from './checkers.js';
import type { CheckerPlatform } from '../checkers/create.js';
import { ProcScanner } from '../checkers/proc-scanner.js';
import { SharedHolds } from '../checkers/shared-holds.js';
import { SharedLinks } from '../checkers/shared-links.js';
import { LinuxLauncher } from '../platform/launcher/linux.js';
import { LinuxNetProbe } from '../platform/net/linux.js';
import { LinuxProcTable } from '../platform/procs/linux.js';
import { noMonitor, type ModuleMonitor, type ResourceReport } from './monitor.js';
import { activeIn } from '../engine/mirror/health.js';
import { nextBootCounter } from './state-store.js';
import { isBeacon, moduleView, type ModuleView, type StatusView } from './views.js';
import { FarmDriver } from './farm-driver.js';
import type { FarmFilter } from '../platform/farm/types.js';
import { farmView, isFarmBeacon } from './farm-view.js';
import { defaultprimProblem, INVENTORY_EVERY_MS, INVENTORY_FRESH_MS, isInventory, knownPeer, resolvePeer, savePeer, type Inventory } from './mirror-peer.js';
import { LinuxFarmFilter } from '../platform/farm/linux.js';
import { renderMetrics } from './metrics.js';
import { metricsListenFromEnv, startMetricsServer, type MetricsServer } from './metrics-server.js';

export const TICK_MS = 100;
/** how long `tandem status` waits for a replication host's fresh status before showing the last one it pushed */
export const STATUS_REFRESH_MS = 1000;

/** The platform a daemon runs on; tests pass fakes. */
export interface Platform {
  clock: Clock;
  transport: (cluster: ClusterConfig, self: string, key: Buffer, boot: number, log: Logger) => Promise<HeartbeatTransport>;
  vip: (log: Logger) => VipAdapter;
  scripts: (home: Home) => ScriptRunner;
  witness: (log: Logger) => WitnessChecker;
  replicator: (ctx: ReplicatorContext) => Replicator;
  /** the module's checkers and process monitoring */
  monitor: (ctx: MonitorContext) => Promise<ModuleMonitor>;
  localAddrs: () => string[];
  /** the packet filter of farm modules (nftables) */
  farmFilter: (log: Logger) => FarmFilter;
}

/** What a module's checkers are built from. */
export interface MonitorContext {
  cfg: ModuleConfig;
  home: Home;
  self: string;
  log: Logger;
  /** posts a `resource` event to the module's driver */
  report: ResourceReport;
  /** another module's state on a node, as this daemon knows it (its own drivers, the heartbeats it receives) */
  moduleState: (module: string, node: string | null) => { state: string; ready: boolean } | null;
}

/**
 * What the checkers of every module of this daemon observe through; one set per process (the process scanner above
 * all is shared, so that every module's proc checkers share their scans). TANDEM_ERRD_OWN_NETNS=1 counts only the
 * processes of the daemon's network namespace (the lab: its nodes share one kernel and one pid namespace).
 */
let linuxCheckerPlatform: CheckerPlatform | null = null;
function checkerPlatform(log: Logger): CheckerPlatform {
  linuxCheckerPlatform ??= {
    clock: realClock,
    net: new SharedLinks(new LinuxNetProbe(), realClock),
    witness: new LinuxWitness({ log: (m) => log.warn(m) }),
    vip: sharedHolds(new LinuxVip({ log: (m) => log.info(m) })),
    launcher: new LinuxLauncher(),
    scanner: new ProcScanner(new LinuxProcTable({ ownNetnsOnly: process.env.TANDEM_ERRD_OWN_NETNS === '1' }), realClock),
  };
  return linuxCheckerPlatform;
}

/** The ip checkers of every module share their address listings (SharedHolds). */
function sharedHolds(vip: LinuxVip): SharedHolds {
  return new SharedHolds(() => vip.listHeldAddrs(), realClock);
}

export const linuxPlatform: Platform = {
  clock: realClock,
  transport: (cluster, self, key, boot, log) =>
    createUdpTransport({ cluster, self, lans: cluster.lans.map((l) => l.name), key, boot, log: (m) => log.warn(m) }),
  vip: (log) => new LinuxVip({ log: (m) => log.info(m) }),
  scripts: (home) => new LinuxScriptRunner({
    scriptsDir: (m) => homePaths.scriptsDir(home, m),
    logFile: (m) => homePaths.moduleLog(home, m),
  }),
  witness: (log) => new LinuxWitness({ log: (m) => log.warn(m) }),
  // A module with <rfs>: its FileReplicator runs in a replication host process of its own (src/replication/host/),
  // which outlives this daemon; the daemon speaks to it over a unix socket.
  replicator: (ctx) => {
    if (!ctx.cfg.rfs) return new NoFilesReplicator();
    return new HostedReplicator({
      module: ctx.cfg.name, home: ctx.home, dirs: ctx.cfg.rfs.replicated.map((d) => d.dir), log: ctx.log,
      replicationFailed: ctx.replicationFailed, copyBehind: ctx.copyBehind, hostLost: ctx.filesLost,
    });
  },
  monitor: (ctx) => {
    const c = ctx.cfg;
    if (!c.errd && c.checkers.length === 0) return Promise.resolve(noMonitor());
    return createCheckers({
      cfg: c, platform: checkerPlatform(ctx.log), report: ctx.report, moduleState: ctx.moduleState,
      custom: {
        env: { ...c.user.vars, ...tandemEnv(c.name, ctx.self, ctx.home) }, logFile: homePaths.moduleLog(ctx.home, c.name),
        log: (m) => ctx.log.info(m),
      },
    });
  },
  localAddrs: localIPv4Addrs,
  farmFilter: () => new LinuxFarmFilter(),
};

/** What a module's replicator is built from. */
export interface ReplicatorContext {
  cfg: MirrorModuleConfig;
  cluster: ClusterConfig;
  self: string;
  home: Home;
  key: Buffer;
  log: Logger;
  /** posts the engine event `replication-failed` to the module's driver */
  replicationFailed: (reason: string) => void;
  /** posts the engine event `copy-behind` to the module's driver */
  copyBehind: (reason: string) => void;
  /** posts the engine event `files-lost` (the process serving the replicated directories died) */
  filesLost: (reason: string) => void;
}

const VERBS: ReadonlySet<string> = new Set(['start', 'stop', 'forcestop', 'restart', 'prim', 'second', 'swap',
  'resetloop', 'errd-on', 'errd-off', 'checker-on', 'checker-off', 'failover-on', 'failover-off']);

export class Daemon {
  private drivers = new Map<string, ModuleDriver>();
  private farms = new Map<string, FarmDriver>();
  /** mirror modules installed here whose peer is not known yet (clusters of more than two nodes), and why */
  private pending = new Map<string, string>();
  /** what the other nodes said they have installed (clusters of more than two nodes) */
  private inventories = new Map<string, { mirrors: string[]; at: number }>();
  private lastInventory = -Infinity;
  private readonly startedAt: number;
  /** (module, node) pairs already warned about: a node that has a mirror module this node runs with another */
  private strangers = new Set<string>();
  private broken = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private control: ControlServer | null = null;
  private metrics: MetricsServer | null = null;
  /** takeovers counted by drivers since dropped (a stopped module reloaded by `tandem config`), by module */
  private pastTakeovers = new Map<string, number>();
  private moduleLogs = new Map<string, Logger>();

  private constructor(
    readonly home: Home,
    readonly self: string,
    readonly cluster: ClusterConfig,
    private readonly transport: HeartbeatTransport,
    private readonly platform: Platform,
    readonly log: Logger,
    private readonly key: Buffer,
  ) {
    this.startedAt = platform.clock.mono();
  }

  static async start(home: Home, env: NodeJS.ProcessEnv, platform: Platform = linuxPlatform, echo = true): Promise<Daemon> {
    const metricsAt = metricsListenFromEnv(env); // a wrong setting stops the start here, before anything is bound
    await fs.mkdir(path.join(home.root, 'state'), { recursive: true });
    const log = new Logger(homePaths.daemonLog(home), echo);
    const cluster = loadCluster(home);
    const key = await readKeyFile(homePaths.clusterKey(home));
    const self = whoami(cluster, platform.localAddrs(), env.TANDEM_NODE || undefined);
    const boot = await nextBootCounter(path.join(home.root, 'state', 'boot'));
    const transport = await platform.transport(cluster, self, key, boot, log);
    const d = new Daemon(home, self, cluster, transport, platform, log, key);
    log.info(`tandem daemon starting: node ${self}, home ${home.root}, boot ${boot}, pid ${process.pid}`);
    transport.onMessage((m) => d.onHeartbeat(m.lan, m.from, m.body));
    try {
      for (const name of listModules(home)) await d.load(name);
      d.control = await startControlServer(homePaths.controlSocket(home), (req) => d.handle(req), { home: home.root });
    } catch (e) {
      await transport.close();
      throw e;
    }
    for (const drv of d.drivers.values()) await drv.boot();
    for (const drv of d.farms.values()) await drv.boot();
    if (metricsAt) await d.startMetrics(metricsAt);
    d.timer = setInterval(() => {
      for (const drv of d.drivers.values()) drv.tick();
      for (const drv of d.farms.values()) drv.tick();
      d.tickInventory();
    }, TICK_MS);
    log.info(`ready: ${d.drivers.size + d.farms.size} module(s)${d.broken.size ? `, ${d.broken.size} with configuration errors` : ''}`);
    return d;
  }

  /** Stop serving; applications and VIPs stay as they are (a restart reattaches). */
  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const drv of this.drivers.values()) {
      drv.detach();
      await drv.settled();
      await drv.d.replicator.close();
      await drv.d.monitor.close();
    }
    for (const drv of this.farms.values()) {
      drv.detach();
      await drv.settled();
      await drv.d.monitor.close();
    }
    await this.metrics?.close();
    await this.control?.close();
    await this.transport.close();
    this.log.info('tandem daemon stopped (modules left as they are)');
    for (const l of this.moduleLogs.values()) await l.close();
    await this.log.close();
  }

  driverOf(name: string | undefined): ModuleDriver {
    const d = this.anyDriverOf(name);
    if (d instanceof FarmDriver) {
      throw new UserError(`module ${d.name} is a farm module: this command is for mirror modules.`, 'farm modules take start, stop, restart, status, state, log, get and set');
    }
    return d;
  }

  /** The driver of an installed module, mirror or farm; a UserError saying what to do when there is none. */
  anyDriverOf(name: string | undefined): ModuleDriver | FarmDriver {
    if (!name) throw new UserError('this command needs a module: add -m <module>.');
    const d = this.drivers.get(name) ?? this.farms.get(name);
    if (d) return d;
    const waiting = this.pending.get(name);
    if (waiting) throw new UserError(`module ${name} is installed but not running on ${this.self}: ${waiting}`);
    const why = this.broken.get(name);
    if (why) throw new UserError(`module ${name} is installed but its configuration is invalid: ${why}`, `fix it, then run \`tandem config -m ${name}\``);
    const known = [...this.drivers.keys(), ...this.farms.keys()].sort().join(', ') || 'none';
    throw new UserError(`no module "${name}" on node ${this.self} (installed: ${known}).`, `install it with \`tandem install -m ${name} <dir-or-package>\``);
  }

  status(module?: string): StatusView {
    const now = this.platform.clock.mono();
    // one module asked: its view or why there is none; every module: the loaded ones and the invalid ones apart
    const base = { node: this.self, pid: process.pid, heartbeats: this.transport.stats() };
    if (module) {
      const d = this.anyDriverOf(module);
      return d instanceof FarmDriver
        ? { ...base, modules: [], farms: [farmView(d, now)], pending: [], invalid: [] }
        : { ...base, modules: [moduleView(d, now)], farms: [], pending: [], invalid: [] };
    }
    const modules: ModuleView[] = [...this.drivers.keys()].sort().map((n) => moduleView(this.drivers.get(n)!, now));
    const farms = [...this.farms.keys()].sort().map((n) => farmView(this.farms.get(n)!, now));
    const invalid = [...this.broken].filter(([n]) => !this.drivers.has(n) && !this.farms.has(n)).sort(([a], [b]) => a.localeCompare(b)).map(([n, error]) => ({ module: n, error }));
    const pending = [...this.pending].sort(([a], [b]) => a.localeCompare(b)).map(([n, reason]) => ({ module: n, reason }));
    return { ...base, modules, farms, pending, invalid };
  }

  /**
   * The Prometheus endpoint (TANDEM_METRICS). It is optional: when its address cannot be bound the daemon runs on
   * without it and logs why (high availability must not depend on it).
   */
  private async startMetrics(at: { host: string; port: number }): Promise<void> {
    try {
      this.metrics = await startMetricsServer(at, () => this.metricsText());
      const a = this.metrics.address;
      this.log.info(`metrics: serving http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}/metrics`);
    } catch (e) {
      const hint = e instanceof UserError && e.hint ? ` (${e.hint})` : '';
      this.log.error(`${(e as Error).message} The daemon runs without metrics${hint}.`);
    }
  }

  /** address the metrics endpoint listens on, null when off or not bound */
  get metricsAddress(): { host: string; port: number } | null {
    return this.metrics?.address ?? null;
  }

  /** What GET /metrics answers: the status view (replication refreshed first, like `tandem status`) as metrics. */
  async metricsText(): Promise<string> {
    await this.refreshReplication();
    const takeovers: Record<string, number> = Object.fromEntries(this.pastTakeovers);
    for (const [n, d] of this.drivers) takeovers[n] = (takeovers[n] ?? 0) + d.takeovers;
    return renderMetrics({ status: this.status(), takeovers, uptimeSeconds: (this.platform.clock.mono() - this.startedAt) / 1000 });
  }

  /** Replication status answered by replication hosts is fetched first (at most STATUS_REFRESH_MS). */
  private async refreshReplication(module?: string): Promise<void> {
    const drivers = module ? [this.drivers.get(module)].filter((d) => d !== undefined) : [...this.drivers.values()];
    await Promise.all(drivers.map((d) => d.d.replicator.refresh(STATUS_REFRESH_MS)));
  }

  private moduleLog(name: string): Logger {
    let l = this.moduleLogs.get(name);
    if (!l) {
      l = new Logger(homePaths.moduleLog(this.home, name), false);
      this.moduleLogs.set(name, l);
    }
    return l;
  }

  private async load(name: string): Promise<ModuleDriver | FarmDriver | null> {
    let cfg: ModuleConfig;
    try {
      cfg = loadModuleConfig(this.home, name, this.cluster);
      this.checkConflicts(cfg);
    } catch (e) {
      this.broken.set(name, (e as Error).message);
      const msg = (e as Error).message;
      this.log.error(msg.startsWith(`module ${name}`) ? msg : `module ${name}: ${msg}`);
      return null;
    }
    this.broken.delete(name);
    if (cfg.mode === 'farm') return this.loadFarm(cfg);
    let peer: string | null;
    try {
      peer = knownPeer(this.home, this.cluster, this.self, name);
    } catch (e) {
      this.broken.set(name, (e as Error).message);
      this.log.error(`module ${name}: ${(e as Error).message}`);
      return null;
    }
    if (!peer) {
      const now = this.platform.clock.mono();
      const r = resolvePeer(name, this.self, this.inventories, now, this.cluster.nodes.filter((n) => n !== this.self), now - this.startedAt);
      if (!('peer' in r)) {
        const why = 'wait' in r ? r.wait : r.error;
        if (this.pending.get(name) !== why) this.moduleLog(name).line('error' in r ? 'error' : 'info', why);
        this.pending.set(name, why);
        return null;
      }
      peer = r.peer;
      await savePeer(this.home, name, peer);
      this.log.info(`module ${name} runs with ${peer} (the other node where it is installed)`);
    }
    this.pending.delete(name);
    const misnamed = defaultprimProblem(name, cfg.defaultprim, this.self, peer);
    if (misnamed) {
      this.broken.set(name, misnamed);
      this.log.error(misnamed);
      return null;
    }
    let drvRef: ModuleDriver | null = null;
    const replicator = this.platform.replicator({
      cfg, cluster: this.cluster, self: this.self, home: this.home, key: this.key, log: this.moduleLog(name),
      replicationFailed: (reason) => drvRef?.post({ kind: 'replication-failed', reason }),
      copyBehind: (reason) => drvRef?.post({ kind: 'copy-behind', reason }),
      filesLost: (reason) => drvRef?.post({ kind: 'files-lost', reason }),
    });
    const monitor = await this.platform.monitor({
      cfg, home: this.home, self: this.self, log: this.moduleLog(name),
      report: (resource, state, detail) => drvRef?.post({ kind: 'resource', name: resource, state, detail }),
      moduleState: (m, node) => this.moduleState(m, node),
    });
    const drv = await ModuleDriver.create({
      home: this.home, self: this.self, cluster: this.cluster, config: cfg, clock: this.platform.clock, monitor,
      scripts: this.platform.scripts(this.home), vip: this.platform.vip(this.moduleLog(name)),
      witness: this.platform.witness(this.moduleLog(name)), replicator, peer,
      send: (lan, to, body) => this.transport.send(lan, to, body), log: this.moduleLog(name),
    });
    drvRef = drv;
    this.drivers.set(name, drv);
    return drv;
  }

  /**
   * Clusters of more than two nodes: tells every other node which mirror modules are installed here (each second),
   * and loads the pending ones whose peer the other nodes' inventories now name.
   */
  private tickInventory() {
    if (this.cluster.nodes.length <= 2) return;
    const now = this.platform.clock.mono();
    if (now - this.lastInventory < INVENTORY_EVERY_MS) return;
    this.lastInventory = now;
    const body: Inventory = { kind: 'inventory', mirrors: [...this.drivers.keys(), ...this.pending.keys()].sort() };
    for (const lan of this.cluster.lans) for (const n of this.cluster.nodes) if (n !== this.self) this.transport.send(lan.name, n, body);
    void this.resolvePending();
  }

  private resolving = false;
  private async resolvePending() {
    if (this.resolving || this.pending.size === 0) return;
    this.resolving = true;
    try {
      for (const name of [...this.pending.keys()]) {
        if (!this.pending.has(name) || this.drivers.has(name)) continue;
        const drv = await this.load(name);
        await drv?.boot();
      }
    } catch (e) {
      this.log.error(`loading a module whose peer was learnt: ${(e as Error).message}`);
    } finally {
      this.resolving = false;
    }
  }

  /** The other nodes heard lately (inventories) holding mirror module `name`: `tandem install` refuses a third. */
  private holders(name: string): string[] {
    const now = this.platform.clock.mono();
    return [...this.inventories].filter(([, h]) => now - h.at < INVENTORY_FRESH_MS && h.mirrors.includes(name)).map(([n]) => n).sort();
  }

  private onInventory(from: string, inv: Inventory) {
    this.inventories.set(from, { mirrors: inv.mirrors, at: this.platform.clock.mono() });
    for (const m of inv.mirrors) {
      const d = this.drivers.get(m);
      const key = `${m}\u0000${from}`;
      if (!d || d.peer === from || this.strangers.has(key)) continue;
      this.strangers.add(key);
      this.moduleLog(m).error(`${from} also has the mirror module ${m} installed, which runs on ${this.self} and ${d.peer}: ` +
        `a mirror module runs on exactly two nodes. ${from} starts nothing of it; uninstall it there (\`tandem uninstall -m ${m}\` on ${from}).`);
    }
  }

  private async loadFarm(cfg: FarmModuleConfig): Promise<FarmDriver> {
    const name = cfg.name;
    let drvRef: FarmDriver | null = null;
    const monitor = await this.platform.monitor({
      cfg, home: this.home, self: this.self, log: this.moduleLog(name),
      report: (resource, state, detail) => drvRef?.post({ kind: 'resource', name: resource, state, detail }),
      moduleState: (m, node) => this.moduleState(m, node),
    });
    const drv = FarmDriver.create({
      home: this.home, self: this.self, cluster: this.cluster, config: cfg, clock: this.platform.clock, monitor,
      scripts: this.platform.scripts(this.home), vip: this.platform.vip(this.moduleLog(name)),
      filter: this.platform.farmFilter(this.moduleLog(name)),
      send: (lan, to, body) => this.transport.send(lan, to, body), log: this.moduleLog(name),
    });
    drvRef = drv;
    this.farms.set(name, drv);
    return drv;
  }

  /** A module's VIPs and `<rfs port>` must not be another loaded module's (config/userconfig.ts: moduleConflict). */
  private checkConflicts(cfg: ModuleConfig): void {
    const others = [...this.drivers.values(), ...this.farms.values()].map((d) => d.d.config).filter((c) => c.name !== cfg.name);
    const e = moduleConflict(cfg, others);
    if (e) throw e;
  }

  /** Module `m`'s state on `node` (null: this node): from its driver here, or from the peer's heartbeats for it. */
  moduleState(m: string, node: string | null): { state: string; ready: boolean } | null {
    const f = this.farms.get(m);
    if (f) {
      if (node === null || node === this.self) return { state: f.state.state, ready: f.state.ready };
      const p = f.state.peers[node];
      return p ? { state: p.beacon.state, ready: p.beacon.ready } : null;
    }
    const d = this.drivers.get(m);
    if (node === null || node === this.self) return d ? { state: d.state.state, ready: d.state.ready } : null;
    if (!d || d.peer !== node || !d.state.peerUp || !d.state.peerBeacon) return null;
    return { state: d.state.peerBeacon.state, ready: d.state.peerBeacon.ready };
  }

  private onHeartbeat(lan: string, from: string, body: unknown) {
    if (isFarmBeacon(body)) {
      this.farms.get(body.module)?.onHeartbeat(lan, from, body);
      return;
    }
    if (isInventory(body)) {
      this.onInventory(from, body);
      return;
    }
    if (!isBeacon(body)) {
      this.log.warn(`heartbeat from ${from} on ${lan} has an unexpected shape; ignored`);
      return;
    }
    const d = this.drivers.get(body.module);
    if (d && d.peer === from) d.onHeartbeat(lan, body); // another node's module of the same name is not the peer's
  }

  /** Control requests from the CLI. */
  async handle(req: ControlRequest): Promise<unknown> {
    switch (req.cmd) {
      case 'ping':
        return { node: this.self, pid: process.pid };
      case 'status':
        await this.refreshReplication(req.module);
        return this.status(req.module);
      case 'admin': {
        const verb = String(req.args?.verb ?? '');
        if (!VERBS.has(verb)) throw new UserError(`unknown module command "${verb}"`);
        const any = this.anyDriverOf(req.module);
        const r = any instanceof FarmDriver ? await any.admin(verb) : await any.admin(verb as AdminVerb, req.args?.fullsync === true);
        if (!r.ok) throw new UserError(r.message);
        return r;
      }
      case 'set':
        return this.setResource(req.module, String(req.args?.resource ?? ''), String(req.args?.value ?? ''));
      case 'config':
        return this.reconfigure(req.module);
      case 'unload':
        return this.unload(req.module);
      case 'holders':
        return { holders: this.holders(String(req.module ?? '')), self: this.self };
      default:
        throw new UserError(`the daemon does not know the request "${req.cmd}"; the CLI and the daemon may be of different versions.`);
    }
  }

  /** `tandem set`: a custom checker reports its resource. */
  private setResource(module: string | undefined, resource: string, value: string): { message: string } {
    const d = this.anyDriverOf(module);
    const s = d.state;
    const checkersOn = d instanceof FarmDriver ? true : d.state.p.checkers;
    const customs = s.cfg.monitored.filter((m) => m.resource.startsWith('custom.'));
    const m = customs.find((x) => x.resource === resource);
    if (!m) {
      throw new UserError(`module ${d.name} has no custom checker resource "${resource}".`,
        customs.length ? `its custom resources: ${customs.map((x) => x.resource).join(', ')}` : 'add <custom ident="…" exec="…"/> to <check> in its userconfig.xml (only custom.* resources can be set)');
    }
    if (value !== 'up' && value !== 'down') throw new UserError(`"${value}" is not a state a checker can set.`, 'use -v up or -v down');
    if (!activeIn(m.when, s.phase) || !checkersOn) {
      throw new UserError(`${resource} is not checked now: ${d.name} is ${s.state}${s.ready ? '' : ' (transient)'} and this checker runs ${m.when === 'pre' ? 'while the module is started' : `when ${m.when}`}${checkersOn ? '' : ' (checkers are off)'}.`,
        'the checker program is started when its checker becomes active; set its state from there');
    }
    d.post({ kind: 'resource', name: resource, state: value, detail: 'set by `tandem set`' });
    return { message: `${resource} set ${value} on ${this.self}` };
  }

  /** Forgets a loaded module (stopped): its driver, checkers and replication host connection. */
  private async drop(name: string): Promise<void> {
    const d = this.drivers.get(name) ?? this.farms.get(name);
    if (!d) return;
    await d.settled();
    if (d instanceof ModuleDriver) {
      await d.d.replicator.close();
      if (d.takeovers) this.pastTakeovers.set(name, (this.pastTakeovers.get(name) ?? 0) + d.takeovers);
    }
    await d.d.monitor.close();
    this.drivers.delete(name);
    this.farms.delete(name);
  }

  /** `tandem config -m NAME`: validate and apply the module's configuration. */
  private async reconfigure(name: string | undefined): Promise<{ module: string; applied: string }> {
    if (!name) throw new UserError('config needs a module: add -m <module>.');
    const cfg = loadModuleConfig(this.home, name, this.cluster);
    this.checkConflicts(cfg);
    const old = this.drivers.get(name) ?? this.farms.get(name);
    if (!old) {
      const drv = await this.load(name);
      if (!drv) return { module: name, applied: `not started: ${this.pending.get(name) ?? this.broken.get(name) ?? 'not loaded'}` };
      await drv.boot();
      return { module: name, applied: 'loaded' };
    }
    if (old.state.state === 'STOP' && !old.state.pending) {
      await this.drop(name);
      const drv = await this.load(name);
      if (!drv) return { module: name, applied: `not started: ${this.pending.get(name) ?? this.broken.get(name) ?? 'not loaded'}` };
      await drv.boot();
      return { module: name, applied: 'reloaded' };
    }
    if (!appliesWhileRunning(old.d.config, cfg)) {
      throw new UserError(
        `module ${name} is ${old.state.state} on ${this.self}: a changed configuration can only be applied while it is stopped.`,
        `run \`tandem stop -m ${name}\` (${old instanceof FarmDriver ? 'the other nodes serve its clients' : 'the peer takes over if it can'}), then \`tandem config -m ${name}\` and \`tandem start -m ${name}\``,
      );
    }
    if (old instanceof FarmDriver) old.d.config = cfg as FarmModuleConfig;
    else old.d.config = cfg as MirrorModuleConfig;
    return { module: name, applied: 'node-local settings updated (script timeouts, variables)' };
  }

  private async unload(name: string | undefined): Promise<{ module: string }> {
    if (!name) throw new UserError('uninstall needs a module: add -m <module>.');
    const d = this.drivers.get(name) ?? this.farms.get(name);
    if (d && d.state.state !== 'STOP') {
      throw new UserError(`module ${name} is ${d.state.state}: stop it first with \`tandem stop -m ${name}\`.`);
    }
    await this.drop(name);
    this.broken.delete(name);
    this.pending.delete(name);
    return { module: name };
  }
}

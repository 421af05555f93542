import type { ClusterConfig, MirrorModuleConfig } from '../../config/types.js';
import { BugError, UserError } from '../../errors.js';
import { listenChannels, type Channel, type Listener } from '../stream/channel.js';

/**
 * Replication listeners: one TCP listener per (LAN, `<rfs port>`) that carries replication, on this node's address
 * there, shared by the modules registered on it. Authenticated channels are routed to the module's replicator by the
 * module name of the handshake. Each module's replication host (src/replication/host/) runs a hub of its own with
 * only its module, so that its listener outlives the daemon.
 */
export class ReplicationHub {
  private routes = new Map<string, { lan: string; port: number; peer: string; accept: (ch: Channel) => void }>();
  private listeners = new Map<string, { modules: string; listener: Listener }>();
  private started = false;

  constructor(private readonly o: { cluster: ClusterConfig; self: string; key: Buffer; log: (msg: string) => void }) {}

  /** The LAN a module replicates on: its heartbeat LAN named `replication`, else its first heartbeat LAN. */
  static lanOf(cfg: MirrorModuleConfig): string {
    return cfg.heart.lans.includes('replication') ? 'replication' : cfg.heart.lans[0]!;
  }

  /** Where to reach `peer`'s listener for module `cfg`, and this node's address on that LAN. */
  endpoint(cfg: MirrorModuleConfig, peer: string): { host: string; port: number; localAddress: string } {
    const lan = this.o.cluster.lans.find((l) => l.name === ReplicationHub.lanOf(cfg));
    const host = lan?.nodes.find((n) => n.name === peer)?.addr;
    const localAddress = lan?.nodes.find((n) => n.name === this.o.self)?.addr;
    if (!lan || !host || !localAddress) {
      throw new UserError(`module ${cfg.name} replicates on LAN ${ReplicationHub.lanOf(cfg)}, which cluster.xml does not define for ${this.o.self} and ${peer}. Add it to cluster.xml or list another <heartbeat name>.`);
    }
    return { host, port: portOf(cfg), localAddress };
  }

  /** Channels of module `cfg` from `peer` go to `accept`; from any other node of the cluster they are closed. */
  register(cfg: MirrorModuleConfig, peer: string, accept: (ch: Channel) => void): void {
    this.routes.set(cfg.name, { lan: ReplicationHub.lanOf(cfg), port: portOf(cfg), peer, accept });
  }

  /** The module was unloaded: its channels are refused from the next `refresh()`. */
  unregister(module: string): void {
    this.routes.delete(module);
  }

  /** Binds the listeners of every registered module's LAN. Throws UserError when an address cannot be bound. */
  async start(): Promise<void> {
    this.started = true;
    await this.refresh();
  }

  /** After a module was (re)loaded: (re)binds the listeners whose set of modules changed. */
  async refresh(): Promise<void> {
    if (!this.started) return;
    const keyOf = (r: { lan: string; port: number }) => `${r.lan}:${r.port}`;
    const wanted = new Map([...this.routes.values()].map((r) => [keyOf(r), r]));
    for (const [k, l] of [...this.listeners]) {
      if (wanted.has(k)) continue;
      await l.listener.close();
      this.listeners.delete(k);
    }
    for (const [k, { lan: name, port }] of wanted) {
      const lan = this.o.cluster.lans.find((l) => l.name === name)!;
      const me = lan.nodes.find((n) => n.name === this.o.self)!;
      const modules = [...this.routes].filter(([, r]) => keyOf(r) === k).map(([m]) => m).sort();
      const had = this.listeners.get(k);
      if (had?.modules === modules.join(' ')) continue;
      await had?.listener.close();
      this.listeners.set(k, { modules: modules.join(' '), listener: await listenChannels({
        host: me.addr, port, self: this.o.self, key: this.o.key, modules,
        allowedPeers: lan.nodes.filter((n) => n.name !== this.o.self).map((n) => ({ name: n.name, addr: n.addr })),
        log: this.o.log,
        onChannel: (ch) => {
          const r = this.routes.get(ch.module);
          if (!r) ch.close();
          else if (ch.peer !== r.peer) {
            this.o.log(`replication channel of ${ch.module} from ${ch.peer} refused: ${ch.module} runs with ${r.peer}`);
            ch.close();
          } else r.accept(ch);
        },
      }) });
    }
  }

  async close(): Promise<void> {
    for (const l of this.listeners.values()) await l.listener.close();
    this.listeners.clear();
  }
}

function portOf(cfg: MirrorModuleConfig): number {
  if (!cfg.rfs) throw new BugError(`module ${cfg.name} has no <rfs>: no replication port`);
  return cfg.rfs.port;
}

import type { ClusterConfig, MirrorModuleConfig } from '../../config/types.js';
import { UserError } from '../../errors.js';
import { listenChannels, type Channel, type Listener } from '../stream/channel.js';

/**
 * The daemon's replication listeners: one TCP listener per LAN that carries replication, on this node's address
 * there and the cluster port (`<lans port>`, the heartbeats' UDP port number), shared by every module with `<rfs>`.
 * Authenticated channels are routed to the module's replicator by the module name of the handshake.
 */
export class ReplicationHub {
  private routes = new Map<string, { lan: string; accept: (ch: Channel) => void }>();
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
    return { host, port: this.o.cluster.port, localAddress };
  }

  register(cfg: MirrorModuleConfig, accept: (ch: Channel) => void): void {
    this.routes.set(cfg.name, { lan: ReplicationHub.lanOf(cfg), accept });
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
    const lans = new Set([...this.routes.values()].map((r) => r.lan));
    for (const [name, l] of [...this.listeners]) {
      if (lans.has(name)) continue;
      await l.listener.close();
      this.listeners.delete(name);
    }
    for (const name of lans) {
      const lan = this.o.cluster.lans.find((l) => l.name === name)!;
      const me = lan.nodes.find((n) => n.name === this.o.self)!;
      const modules = [...this.routes].filter(([, r]) => r.lan === name).map(([m]) => m).sort();
      const had = this.listeners.get(name);
      if (had?.modules === modules.join(' ')) continue;
      await had?.listener.close();
      this.listeners.set(name, { modules: modules.join(' '), listener: await listenChannels({
        host: me.addr, port: this.o.cluster.port, self: this.o.self, key: this.o.key, modules,
        allowedPeers: lan.nodes.filter((n) => n.name !== this.o.self).map((n) => ({ name: n.name, addr: n.addr })),
        log: this.o.log,
        onChannel: (ch) => {
          const r = this.routes.get(ch.module);
          if (!r) ch.close();
          else r.accept(ch);
        },
      }) });
    }
  }

  async close(): Promise<void> {
    for (const l of this.listeners.values()) await l.listener.close();
    this.listeners.clear();
  }
}

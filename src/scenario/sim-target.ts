import { genId } from '../engine/mirror/generation.js';
import { mergeRules, parseRules } from '../engine/rules/index.js';
import type { AdminVerb } from '../engine/mirror/types.js';
import { Sim, defaultSimConfig, type SimConfig } from '../sim/sim.js';
import { parseSimDuration } from './script.js';
import type { NodeObservation, Reply, ScenarioCheckers, ScenarioTarget, ScenarioWrites } from './target.js';

/** Scenario target over the deterministic simulator: time moves only with `run`, so `eventually` checks once. */
export class SimTarget implements ScenarioTarget {
  readonly nodes = ['node1', 'node2'];
  private cfg: SimConfig = defaultSimConfig();
  sim = new Sim(this.cfg, this.nodes);

  async configure(settings: Record<string, string>) {
    const c = this.cfg;
    for (const [k, v] of Object.entries(settings)) {
      if (k === 'timeout') c.timeoutMs = parseSimDuration(v);
      else if (k === 'pulse') c.pulseMs = parseSimDuration(v);
      else if (k === 'syncdelta') c.syncdeltaMs = v === '0' ? 0 : parseSimDuration(v);
      else if (k === 'witness') c.witness = v === 'on';
      else if (k === 'failover') c.failover = v === 'on';
      else if (k === 'defaultprim') c.defaultprim = v;
      else if (k === 'resync') c.resyncMs = parseSimDuration(v);
      else if (k === 'handle') c.handleTimeMs = parseSimDuration(v);
      else if (k === 'maxloop') c.maxloop = Number(v);
      else if (k === 'loop_interval') c.loopIntervalMs = parseSimDuration(v);
      else throw new Error(`unknown config key ${k}`);
    }
    this.sim = new Sim(c, this.nodes);
  }
  async boot(node: string) { this.sim.boot(node); }
  async powerOff(node: string) { this.sim.powerOff(node); }
  async killDaemon(node: string) { this.sim.killDaemon(node); }
  async admin(node: string, verb: AdminVerb, fullsync: boolean): Promise<Reply> {
    const n = this.sim.node(node);
    const reqId = this.sim.admin(node, verb, fullsync);
    const find = () => n.replies.find((r) => r.reqId === reqId);
    for (let waited = 0; !find() && waited < 30_000; waited += 100) this.sim.run(100);
    const r = find();
    return r ? { ok: r.ok, message: r.message } : { ok: false, message: 'no reply' };
  }
  async cut(lan: string, node?: string) { for (const n of node ? [node] : this.nodes) this.sim.cut.add(`${lan}:${n}`); }
  async heal() { this.sim.cut.clear(); }
  lans() { return this.cfg.lans; }
  async witness(node: string, reachable: boolean) { this.sim.node(node).witnessOk = reachable; }
  async failScript(node: string, script: string, fail: boolean) {
    const s = this.sim.node(node).failScripts;
    if (fail) s.add(script);
    else s.delete(script);
  }
  async run(ms: number) { this.sim.run(ms); }
  async observe(node: string): Promise<NodeObservation> {
    const e = this.sim.node(node).engine;
    if (!e) return { up: false };
    return { up: true, state: e.state, ready: e.ready, waitReason: e.waitReason, alarms: e.alarms.map((a) => a.code), generation: e.p.gen ? genId(e.p.gen) : null };
  }
  async vipHolders() { return this.nodes.filter((n) => this.sim.node(n).vip); }
  async appNodes() { return this.nodes.filter((n) => this.sim.node(n).app); }
  async eventually(_ms: number, cond: () => Promise<boolean>) { return cond(); }
  violations() { return this.sim.violations; }
  elapsedMs() { return this.sim.mono; }
  checkers(): ScenarioCheckers {
    const sim = this.sim;
    const c = this.cfg;
    return {
      add: (resource, when, action, by) => {
        if (this.nodes.some((n) => sim.node(n).alive)) throw new Error('checker must come before the first boot');
        const [cls, ...rest] = resource.split('.');
        c.monitored = [...c.monitored, { resource, when, by }];
        if (action !== 'noaction') c.rules = [...c.rules, {
          label: `${cls}_${rest.join('.')}`, action, source: 'default', holdMs: by === 'errd' ? 0 : null, line: 0, column: 0,
          expr: { kind: 'cmp', ref: { side: 'local', cls: cls!, ident: rest.join('.') }, op: '==', state: 'down' },
        }];
        this.sim = new Sim(c, this.nodes);
      },
      rule: (text) => {
        if (this.nodes.some((n) => sim.node(n).alive)) throw new Error('rule must come before the first boot');
        const parsed = parseRules(text, { file: 'scenario', line: 1, column: 1 });
        c.rules = mergeRules(c.rules, parsed, { extends: true });
        this.sim = new Sim(c, this.nodes);
      },
      report: (node, resource, state) => this.sim.report(node, resource, state),
      killApp: (node) => this.sim.killApp(node),
      copyBehind: (node) => this.sim.feed(this.sim.node(node), { kind: 'copy-behind', reason: 'sim: disk full' }),
      resource: (node, resource) => this.sim.node(node).engine?.resources[resource]?.state ?? null,
    };
  }
  writes(): ScenarioWrites {
    const sim = this.sim;
    return {
      enable: (on) => { sim.writes = on; },
      lost: (node) => sim.lostWrites(node),
      held: (node) => [...sim.node(node).data],
    };
  }
  async describe() {
    return this.nodes.map((n) => `${n} ${this.sim.describe(n)} vip=${this.sim.node(n).vip}`).join(', ');
  }
  /** the nodes' engine logs, for failure reports */
  logs(lines = 40): string {
    return this.nodes.map((n) => `--- ${n}\n${this.sim.node(n).log.slice(-lines).join('\n')}`).join('\n');
  }
}

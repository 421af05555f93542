import fs from 'node:fs/promises';
import path from 'node:path';
import { controlRequest } from '../daemon/control.js';
import type { StatusView } from '../daemon/views.js';
import type { AdminVerb } from '../engine/mirror/types.js';
import type { NodeObservation, Reply, ScenarioTarget } from '../scenario/target.js';
import { homePaths } from '../home.js';
import type { Lab } from './lab.js';
import { controlSocketOf, createMirrorLab, DEMO_MODULE, DEMO_VIP, nodesOf, waitForDaemon, type MirrorLabOptions } from './mirror-lab.js';

/**
 * Scenario target over the real namespace lab: real daemons, real `ip`, the demo HTTP application. The lab is built
 * at the first verb that needs it, so `config` lines come first. Observations go straight to the daemons' control
 * sockets; administrator commands go through the real CLI.
 */
export class LabTarget implements ScenarioTarget {
  readonly nodes = ['node1', 'node2'];
  lab: Lab | null = null;
  private opts: MirrorLabOptions = { pulse: '200ms', timeout: '1s' };
  private seen: string[] = [];
  private monitor: NodeJS.Timeout | null = null;
  private dualSince: number | null = null;
  private timeoutMs = 1000;
  private startedAt: number | null = null;

  async configure(settings: Record<string, string>) {
    if (this.lab) throw new Error('config must come before the first verb that uses the lab');
    for (const [k, v] of Object.entries(settings)) {
      if (k === 'timeout') { this.opts.timeout = v; this.timeoutMs = durationMs(v); }
      else if (k === 'pulse') this.opts.pulse = v;
      else if (k === 'syncdelta') this.opts.syncdelta = v;
      else if (k === 'witness') this.opts.witness = v === 'on';
      else if (k === 'failover') this.opts.failover = v === 'on';
      else if (k === 'defaultprim') this.opts.defaultprim = v;
      else throw new Error(`config key ${k} is not supported in the lab`);
    }
  }

  async ensure(): Promise<Lab> {
    if (!this.lab) {
      this.lab = await createMirrorLab({ ...this.opts, daemons: false });
      this.startedAt = Date.now();
      this.monitor = setInterval(() => void this.checkInvariant(), 250);
    }
    return this.lab;
  }

  async dispose(keepDir = false) {
    if (this.monitor) clearInterval(this.monitor);
    await this.lab?.down({ keepDir });
  }

  async boot(node: string) {
    const lab = await this.ensure();
    if (lab.isPoweredOff(node)) await lab.boot(node);
    else lab.spawnDaemon(node);
    await waitForDaemon(lab, node);
  }
  async powerOff(node: string) { await (await this.ensure()).poweroff(node); }
  async killDaemon(node: string) {
    const lab = await this.ensure();
    lab.killDaemon(node, 'SIGKILL');
    await lab.waitFor(`daemon of ${node} gone`, async () => lab.daemonPid(node) === undefined, 5000, 20);
  }
  async admin(node: string, verb: AdminVerb, fullsync: boolean): Promise<Reply> {
    const lab = await this.ensure();
    const r = await lab.cli(node, [verb, '-m', DEMO_MODULE, ...(fullsync ? ['--fullsync'] : [])], { reject: false, timeoutMs: 60_000 });
    return { ok: r.code === 0, message: `${r.stdout}${r.stderr}`.trim() };
  }
  async cut(lan: string, node?: string) { await (await this.ensure()).cut(lan, node); }
  async heal() { await (await this.ensure()).heal(); }
  lans() { return ['default', 'replication']; }
  async witness(node: string, reachable: boolean) {
    const lab = await this.ensure();
    const w = lab.addr('witness');
    await lab.exec(node, ['ip', 'route', reachable ? 'del' : 'add', 'blackhole', `${w}/32`], { reject: reachable ? false : true });
  }
  async failScript(node: string, script: string, fail: boolean) {
    const lab = await this.ensure();
    const home = { root: lab.paths(node).home, runDir: lab.paths(node).run };
    const file = path.join(homePaths.scriptsDir(home, DEMO_MODULE), script);
    if (fail) {
      await fs.rename(file, `${file}.orig`);
      await fs.writeFile(file, '#!/bin/sh\necho "failing on purpose (scenario)" >&2\nexit 1\n', { mode: 0o755 });
    } else {
      await fs.rename(`${file}.orig`, file);
    }
  }
  async run(ms: number) { await new Promise((r) => setTimeout(r, ms)); }

  async status(node: string): Promise<StatusView | null> {
    if (!this.lab || this.lab.isPoweredOff(node)) return null;
    try {
      return (await controlRequest(controlSocketOf(this.lab, node), 'status', DEMO_MODULE, undefined, { timeoutMs: 2000 })) as StatusView;
    } catch {
      return null;
    }
  }

  async observe(node: string): Promise<NodeObservation> {
    const v = (await this.status(node))?.modules[0];
    if (!v) return { up: false };
    return { up: true, state: v.state, ready: v.ready, waitReason: v.waitReason, alarms: v.alarms.map((a) => a.code), generation: v.generation };
  }

  async vipHolders(): Promise<string[]> {
    const lab = this.lab;
    if (!lab) return [];
    const out: string[] = [];
    for (const n of nodesOf(lab)) {
      if (lab.isPoweredOff(n)) continue;
      const r = await lab.exec(n, ['ip', '-4', '-o', 'addr', 'show'], { reject: false });
      if (r.stdout.includes(` ${DEMO_VIP}/`)) out.push(n);
    }
    return out;
  }

  async appNodes(): Promise<string[]> {
    const lab = this.lab;
    if (!lab) return [];
    const out: string[] = [];
    for (const n of nodesOf(lab)) {
      const pid = Number((await fs.readFile(path.join(lab.paths(n).run, 'demo-app.pid'), 'utf8').catch(() => '')).trim());
      if (!pid) continue;
      const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmd.includes('app.mjs')) out.push(n);
    }
    return out;
  }

  async eventually(ms: number, cond: () => Promise<boolean>): Promise<boolean> {
    const end = Date.now() + ms;
    for (;;) {
      if (await cond()) return true;
      if (Date.now() >= end) return false;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Two nodes holding the VIP on the same connected LAN for longer than a yield takes. */
  private async checkInvariant() {
    const lab = this.lab;
    if (!lab) return;
    const holders = await this.vipHolders().catch(() => []);
    const state = JSON.parse(await fs.readFile(path.join(lab.dir, 'lab.json'), 'utf8').catch(() => '{}')) as { cuts?: Record<string, string[]> };
    const cut = (state.cuts?.default ?? []).length > 0;
    if (holders.length < 2 || cut) {
      this.dualSince = null;
      return;
    }
    this.dualSince ??= Date.now();
    if (Date.now() - this.dualSince > this.timeoutMs + 3000 && !this.seen.length) {
      this.seen.push(`VIP held by ${holders.join(' and ')} while both are connected, for more than ${this.timeoutMs + 3000} ms`);
    }
  }

  violations() { return this.seen; }
  elapsedMs() { return this.startedAt === null ? 0 : Date.now() - this.startedAt; }
  writes() { return null; }
  checkers() { return null; }

  async describe() {
    const parts = [];
    for (const n of this.nodes) {
      const o = await this.observe(n);
      parts.push(`${n} ${o.up ? `${o.state}${o.ready ? '' : ' (transient)'}${o.waitReason ? ` [${o.waitReason}]` : ''}` : 'OFF/no daemon'}`);
    }
    return `${parts.join(', ')}; VIP on ${(await this.vipHolders()).join(' and ') || 'no node'}`;
  }
}

function durationMs(v: string): number {
  const m = /^(\d+)(ms|s)$/.exec(v);
  if (!m) throw new Error(`lab durations are ms or s, got ${v}`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

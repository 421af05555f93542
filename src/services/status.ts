import chalk from 'chalk';
import type { ModuleView, StatusView } from '../daemon/views.js';
import type { FarmView } from '../daemon/farm-view.js';
import type { ModState } from '../engine/mirror/types.js';
import type { FarmModState } from '../engine/farm/types.js';
import { formatDuration } from '../config/duration.js';

/** SafeKit's colours: STOP red; WAIT orange when transient, red when settled; others orange transient, green ready. */
export function colourState(state: ModState | FarmModState | null, ready: boolean | null): string {
  if (!state) return chalk.gray('unknown');
  const label = `${state}${ready === false ? ' (transient)' : ''}`;
  if (state === 'STOP') return chalk.red(label);
  if (state === 'WAIT') return ready ? chalk.red(label) : chalk.yellow(label);
  return ready ? chalk.green(label) : chalk.yellow(label);
}

const ago = (ms: number | null) => (ms === null ? 'never' : ms < 1000 ? `${ms} ms ago` : `${(ms / 1000).toFixed(1)} s ago`);

export function formatModule(m: ModuleView): string[] {
  const lines: string[] = [];
  const wait = m.waitReason && m.state === 'WAIT' ? chalk.dim(` [${m.waitReason}]`) : '';
  const peer = m.peer.reachable ? colourState(m.peer.state, m.peer.ready) : chalk.red('unreachable');
  lines.push(`${chalk.bold(m.module)}  ${m.node}: ${colourState(m.state, m.ready)}${wait}   peer ${m.peer.node}: ${peer}   generation ${m.generation ?? '-'}${m.consistent ? '' : chalk.red(' (incomplete copy)')}`);
  lines.push(`  heartbeats: ${m.peer.lans.map((l) => `${l.name} ${l.up ? chalk.green('up') : chalk.red('down')} (${ago(l.lastHeardMsAgo)})`).join(', ')}`);
  if (m.vips.length) lines.push(`  virtual IP: ${m.vips.map((v) => `${v.addr} on ${v.holder ?? chalk.red('no node')}`).join(', ')}`);
  if (m.reintegration) {
    const r = m.reintegration;
    const eta = r.rateBytesPerS > 0 ? `${Math.round((r.bytesTotal - r.bytesDone) / r.rateBytesPerS)} s` : '?';
    lines.push(`  reintegration: ${r.bytesDone}/${r.bytesTotal} bytes, ${(r.rateBytesPerS / 1048576).toFixed(1)} MiB/s, ETA ${eta}`);
  }
  const rp = m.replication;
  if (rp) {
    const mode = rp.mode === 'live' ? chalk.green(rp.mode) : rp.mode === 'failing' ? chalk.red(rp.mode) : chalk.yellow(rp.mode);
    lines.push(`  replication: ${rp.dirs.join(', ')} ${rp.role === 'off' ? chalk.dim('(not in use)') : `${rp.role}, ${mode}`}`);
    const last = rp.lastReintegration;
    if (last) {
      lines.push(`  last reintegration: ${last.at} by ${last.mode === 'changes' ? 'recorded changes' : 'comparison'}, ` +
        `${last.bytes} bytes, ${last.passes} passes, ${(last.ms / 1000).toFixed(1)} s${last.freezeMs ? `, writes held ${last.freezeMs} ms` : ''}`);
    }
    for (const q of rp.quarantines) lines.push(`  ${chalk.yellow('quarantine')} (split brain) of ${q.dir}: ${q.files} file(s) kept in ${q.path}`);
  }
  const watched = m.resources.filter((r) => r.by !== 'derived');
  if (watched.length) {
    const shown = watched.map((r) => `${r.name} ${colourResource(r.state)}${r.active ? (r.detail && r.state !== 'up' ? ` (${r.detail})` : '') : chalk.dim(' (not watched now)')}`);
    lines.push(`  resources: ${shown.join(', ')}`);
  }
  if (m.rule) lines.push(`  ${chalk.yellow('rule')} ${m.rule.label}: ${m.rule.action}() because ${m.rule.because.join(', ') || 'its condition holds'}${m.rule.waiting ? ' (in effect)' : ' (waiting for handle_time)'}`);
  if (m.loops.count > 0) {
    const last = m.loops.recent.at(-1);
    lines.push(`  automatic restarts: ${m.loops.count} of ${m.loops.max} within ${formatDuration(m.loops.intervalMs)}${last ? `, last ${last.at}: ${last.reason}` : ''}` +
      `${m.loops.exhausted ? chalk.red(' (exhausted: `tandem resetloop` lets this node run it again)') : ''}`);
  }
  if (!m.switches.errd) lines.push(`  ${chalk.yellow('process monitoring (errd) is off')} (\`tandem errd on -m ${m.module}\`)`);
  if (!m.switches.checkers) lines.push(`  ${chalk.yellow('checkers are off')} (\`tandem checker on -m ${m.module}\`)`);
  if (!m.switches.failover) lines.push(`  ${chalk.yellow('automatic failover is off')} (\`tandem failover on -m ${m.module}\`)`);
  for (const a of m.alarms) lines.push(`  ${chalk.red('alarm')} ${a.code}: ${a.message}`);
  return lines;
}

/** A farm module on this node: its state, the members it sees, its buckets and each host's share. */
export function formatFarm(m: FarmView): string[] {
  const lines: string[] = [];
  const wait = m.waitReason && m.state === 'WAIT' ? chalk.dim(` [${m.waitReason}]`) : '';
  lines.push(`${chalk.bold(m.module)}  ${m.node}: ${colourState(m.state, m.ready)}${wait}   farm of ${m.members.length} serving: ${m.members.join(', ') || chalk.red('none')}`);
  for (const g of m.groups) {
    const shares = Object.entries(g.shares).map(([n, c]) => `${n} ${c}`).join(', ');
    lines.push(`  group ${g.name}: this node accepts ${g.owned} of ${g.buckets} buckets; shares ${shares}`);
  }
  if (m.holdBack) lines.push(`  ${chalk.yellow('not accepting clients yet')}: ${m.holdBack}`);
  if (m.peers.length) lines.push(`  peers: ${m.peers.map((p) => `${p.node} ${colourState(p.state, p.ready)} (${ago(p.lastHeardMsAgo)}${p.lans.length ? ` on ${p.lans.join(', ')}` : ''})`).join(', ')}`);
  if (m.vips.length) lines.push(`  virtual IP: ${m.vips.map((v) => `${v.addr}${v.held ? '' : chalk.dim(' (not held here)')}`).join(', ')}`);
  const watched = m.resources;
  if (watched.length) lines.push(`  resources: ${watched.map((r) => `${r.name} ${colourResource(r.state)}${r.active ? (r.detail && r.state !== 'up' ? ` (${r.detail})` : '') : chalk.dim(' (not watched now)')}`).join(', ')}`);
  return lines;
}

export function colourResource(state: string): string {
  return state === 'up' ? chalk.green(state) : state === 'down' ? chalk.red(state) : chalk.yellow(state);
}

export function formatStatus(v: StatusView): string {
  const invalid = (v.invalid ?? []).map((m) => chalk.red(`${m.module}: not loaded, its configuration is invalid: ${m.error}`));
  const pending = (v.pending ?? []).map((m) => chalk.yellow(`${m.module}: not running here: ${m.reason}`));
  if (v.modules.length === 0 && (v.farms ?? []).length === 0 && pending.length === 0 && invalid.length === 0) return `node ${v.node}: no modules installed (install one with \`tandem install -m NAME <dir>\`)`;
  const d = v.heartbeats.dropped;
  const dropped = d.badMac + d.replay + (d.stale ?? 0) + d.badSource + d.malformed + d.unknownNode + (d.misdirected ?? 0);
  const foot = dropped ? chalk.yellow(`heartbeat packets dropped: ${dropped} (bad MAC ${d.badMac}, replay ${d.replay}, stale ${d.stale ?? 0}, bad source ${d.badSource}, malformed ${d.malformed}, unknown node ${d.unknownNode}, misdirected ${d.misdirected ?? 0})`) : '';
  return [...v.modules.flatMap(formatModule), ...(v.farms ?? []).flatMap(formatFarm), ...pending, ...invalid, foot].filter(Boolean).join('\n');
}

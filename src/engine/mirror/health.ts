/**
 * What the mirror engine knows of the module's health: the resources its checkers report, the ones it derives
 * itself (`rfs.uptodate`, `heartbeat.<lan>`), when each checker is active (the monitoring phase), and the sliding
 * window of automatic restarts (`maxloop` in `loop_interval`). Pure.
 */
import type { CheckWhen } from '../../config/types.js';
import type { ResourceState, ResourceView } from '../rules/types.js';
import type { Beacon, MirrorState } from './types.js';

/**
 * Which checkers run now. `off`: the module is stopped (or its prestart/stop scripts run); `pre`: started
 * (checkers with when/class `pre`); `prim`: PRIM or ALONE, ready (`pre`, `prim`, `both`); `second`: SECOND, ready
 * (`pre`, `second`, `both`). Transient states watch only `pre` checkers: the application is being (re)started.
 */
export type MonitorPhase = 'off' | 'pre' | 'prim' | 'second';

export function monitorPhase(s: MirrorState): MonitorPhase {
  if (s.state === 'STOP') return 'off';
  const p = s.pending;
  if (p?.kind === 'plan' && (p.purpose.kind === 'prestart' || p.purpose.kind === 'stop' || p.purpose.kind === 'stopstart')) return 'off';
  if (s.ready && !p && (s.state === 'ALONE' || s.state === 'PRIM')) return 'prim';
  if (s.ready && !p && s.state === 'SECOND') return 'second';
  return 'pre';
}

export function activeIn(when: CheckWhen, phase: MonitorPhase): boolean {
  switch (phase) {
    case 'off': return false;
    case 'pre': return when === 'pre';
    case 'prim': return when !== 'second';
    case 'second': return when !== 'prim';
  }
}

/** The resources this node decides on and announces: the checkers' reports and the derived ones. */
export function localResources(s: MirrorState): Map<string, ResourceState> {
  const m = new Map<string, ResourceState>();
  for (const [name, r] of Object.entries(s.resources)) m.set(name, r.state);
  for (const lan of s.cfg.lans) {
    const heard = s.lanHeard[lan];
    m.set(`heartbeat.${lan}`, heard === null || heard === undefined ? 'init' : s.mono - heard < s.cfg.timeoutMs ? 'up' : 'down');
  }
  if (s.cfg.hasRfs) m.set('rfs.uptodate', rfsUptodate(s));
  return m;
}

/** up: this copy is the newest (running) or a live replica (ready SECOND); down: incomplete or being copied. */
function rfsUptodate(s: MirrorState): ResourceState {
  if (!s.p.consistent || (s.state === 'SECOND' && !s.ready)) return 'down';
  if (s.ready && (s.state === 'ALONE' || s.state === 'PRIM' || s.state === 'SECOND')) return 'up';
  return 'unknown';
}

export function resourceView(s: MirrorState): ResourceView {
  const pb = s.peerUp ? s.peerBeacon : null;
  return {
    local: localResources(s),
    remote: pb?.resources ? new Map(Object.entries(pb.resources)) : null,
  };
}

/** Automatic restarts counted in the window `loop_interval` ending now (wall clock: the count survives reboots). */
export function loopsInWindow(s: MirrorState): number {
  return s.p.loops.filter((l) => s.wall - l.at < s.cfg.loopIntervalMs).length;
}

/** The node restarted the application more than `maxloop` times in the window: it no longer runs it by itself. */
export function loopsExhausted(s: MirrorState): boolean {
  return loopsInWindow(s) > s.cfg.maxloop;
}

/** Can the peer, by its beacon, take the application over (it is neither waiting on a rule nor out of loops)? */
export function peerCanRun(pb: Beacon | null): boolean {
  return !!pb && pb.canRun !== false;
}

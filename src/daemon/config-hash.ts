import { createHash } from 'node:crypto';
import type { MirrorModuleConfig, ModuleConfig } from '../config/types.js';

/**
 * A short hash of what must be identical on both nodes of a module (heartbeat timing, VIPs, replicated
 * directories, split-brain witness, failover policy). Node-local settings (script timeouts, user variables) are
 * left out so they may differ.
 */
export function configHash(c: MirrorModuleConfig): string {
  const shared = {
    // the VIPs as earlier versions hashed them, so that an upgrade of one node does not read as a different config
    name: c.name, mode: c.mode, defaultprim: c.defaultprim, failover: c.failover, heart: c.heart,
    vips: c.vips.map(({ addr, where, check }) => ({ addr, where, check })),
    rfs: c.rfs, splitbrain: c.splitbrain,
  };
  return createHash('sha256').update(JSON.stringify(shared)).digest('hex').slice(0, 16);
}

/**
 * Whether `next` may replace `running` while the module runs: only node-local settings differ (a mirror module's
 * configHash is the same; a farm module's configuration is the same but for its user variables).
 */
export function appliesWhileRunning(running: ModuleConfig, next: ModuleConfig): boolean {
  if (running.mode === 'farm') return next.mode === 'farm' && JSON.stringify({ ...next, user: null }) === JSON.stringify({ ...running, user: null });
  return next.mode === 'mirror' && configHash(next) === configHash(running);
}

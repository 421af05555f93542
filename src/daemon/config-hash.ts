import { createHash } from 'node:crypto';
import type { MirrorModuleConfig } from '../config/types.js';

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

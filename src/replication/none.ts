import type { ReintegrateRequest, ReintegrationProgress, Replicator } from './types.js';

/**
 * The replicator of a module with no `<rfs>`: it has no replicated directories, so its copy is always complete
 * and reintegration has nothing to transfer.
 */
export class NoFilesReplicator implements Replicator {
  async reintegrate(req: ReintegrateRequest): Promise<void> {
    if (req.signal.aborted) throw new Error('reintegration aborted');
  }
  progress(): ReintegrationProgress | null {
    return null;
  }
  alarm(): string | null {
    return null;
  }
}

/**
 * The replicator of a module with `<rfs>` in this version, where file replication is not implemented yet: the
 * state machine runs (roles, VIP, scripts), but the replicated directories are NOT copied to the peer. Every
 * reintegration says so in the log and `tandem status` shows it as a standing alarm, so nobody mistakes a SECOND
 * for a copy of the data.
 */
export class DirsNotReplicated implements Replicator {
  constructor(private readonly dirs: string[], private readonly log: (msg: string) => void) {}
  async reintegrate(req: ReintegrateRequest): Promise<void> {
    if (req.signal.aborted) throw new Error('reintegration aborted');
    this.log(`file replication is not implemented in this version: ${this.dirs.join(', ')} NOT copied from ${req.from}`);
  }
  progress(): ReintegrationProgress | null {
    return null;
  }
  alarm(): string | null {
    return `file replication is not implemented in this version: ${this.dirs.join(', ')} are not copied between the nodes`;
  }
}

import type { FilesRole, ReintegrateRequest, ReintegrationProgress, ReplicationDirective, ReplicationStatus, Replicator } from './types.js';

/**
 * The replicator of a module with no `<rfs>`: it has no replicated directories, so its copy is always complete
 * and reintegration has nothing to transfer.
 */
export class NoFilesReplicator implements Replicator {
  async reattach(): Promise<null> {
    return null;
  }
  async refresh(_timeoutMs: number): Promise<void> {}
  async setRole(_role: FilesRole): Promise<void> {}
  direct(_d: ReplicationDirective): void {}
  async reintegrate(req: ReintegrateRequest): Promise<void> {
    if (req.signal.aborted) throw new Error('reintegration aborted');
  }
  progress(): ReintegrationProgress | null {
    return null;
  }
  alarm(): string | null {
    return null;
  }
  status(): ReplicationStatus | null {
    return null;
  }
  async close(): Promise<void> {}
}

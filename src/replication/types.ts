/**
 * The replication seam between the engine's driver and file replication (issue 3 fills it with FUSE interception,
 * the replication stream and reintegration).
 *
 * Contract of `reintegrate`: resolves only when the local copy of every replicated directory equals the source's
 * (the caller then adopts the source's generation and reports SECOND ready); rejects with the reason otherwise
 * (source lost, disk full, I/O error). It must stop promptly when `signal` aborts, leaving the copy marked
 * incomplete. `quarantine`: local files that differ are moved aside (reported in status), never discarded.
 */
export interface Replicator {
  reintegrate(req: ReintegrateRequest): Promise<void>;
  /** progress of a running reintegration, for `tandem status` */
  progress(): ReintegrationProgress | null;
  /** a standing problem to show as an alarm in `tandem status`, or null */
  alarm(): string | null;
}

export interface ReintegrateRequest {
  module: string;
  from: string;
  full: boolean;
  quarantine: boolean;
  signal: AbortSignal;
}

export interface ReintegrationProgress {
  bytesDone: number;
  bytesTotal: number;
  rateBytesPerS: number;
}

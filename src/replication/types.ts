import type { PrimaryFiles, ReplicationDirective } from '../engine/mirror/types.js';

export type { PrimaryFiles, ReplicationDirective };

/**
 * The replication seam between the engine's driver and file replication (src/replication/files/ for modules with
 * `<rfs>`, none.ts for the others).
 *
 * - `setRole` runs the plan step `files` (engine): `primary` = the interception is mounted over the replicated
 *   directories before start_prim, every change goes to the SECOND (or into the change record while ALONE);
 *   `secondary` = the directories are read-only for applications and the local copy is updated from the peer;
 *   `off` = neither. Idempotent; rejects when the layout cannot be set up (the plan fails). The first call
 *   of a daemon, even `off`, first removes leftovers of an earlier daemon (dead mounts).
 *   `primary` says which generation the application writes in and whether the ready SECOND reattaches (swap) or
 *   changes are recorded for the peer.
 * - `direct` gets what the engine decided for replication (engine action `replication`, ReplicationDirective),
 *   synchronously, after the persist it depends on; it must not block. The replicator never watches engine state.
 * - `reintegrate` resolves only when the local copy of every replicated directory equals the source's generation
 *   `sourceGen` and live replication from it runs (the caller then adopts that generation and reports SECOND
 *   ready); rejects with the reason otherwise (disk full, I/O error, source gone for good). It stops promptly when
 *   `signal` aborts, leaving the copy marked incomplete. `quarantine`: local files that differ are moved aside
 *   (reported in status), never discarded.
 * - The replicator reports a write it could not replicate through the `replicationFailed` callback it was built
 *   with, once; the driver posts the engine event `replication-failed`. The write stays unacknowledged until the
 *   engine persisted a new generation and said so (`outdated`).
 * - A SECOND that could not apply a change it acknowledged on receipt (async="second") reports it through the
 *   `copyBehind` callback: the engine persists that its copy is incomplete.
 */
export interface Replicator {
  /**
   * Daemon start, before the engine's `boot`: attaches to what an earlier daemon left serving the replicated
   * directories (the module's replication host, src/replication/host/) and says which layout they are in, and what
   * it held for the engine while no daemon was attached (the caller posts those after `boot`). null: nothing was
   * left serving (then `setRole('off')` removes the leftovers).
   */
  reattach(): Promise<ReattachedFiles | null>;
  setRole(role: FilesRole, primary?: PrimaryFiles): Promise<void>;
  direct(d: ReplicationDirective): void;
  reintegrate(req: ReintegrateRequest): Promise<void>;
  /**
   * Brings `progress`, `alarm` and `status` up to date when they are answered from another process (a round trip,
   * bounded by `timeoutMs`; on timeout they keep what they had). Never rejects.
   */
  refresh(timeoutMs: number): Promise<void>;
  /** progress of a running reintegration, for `tandem status` */
  progress(): ReintegrationProgress | null;
  /** a standing problem to show as an alarm in `tandem status`, or null */
  alarm(): string | null;
  /** what `tandem status` shows about the replicated directories; null for a module without them */
  status(): ReplicationStatus | null;
  /** daemon shutdown */
  close(): Promise<void>;
}

export type FilesRole = 'primary' | 'secondary' | 'off';

export interface ReattachedFiles {
  role: FilesRole;
  /** pid of the process that serves them */
  pid: number;
  /** a write that could not be replicated and waits for the engine's new generation (post `replication-failed`) */
  failed: string | null;
  /** a change the SECOND acknowledged and could not apply (post `copy-behind`) */
  behind: string | null;
}

export interface ReintegrateRequest {
  module: string;
  from: string;
  full: boolean;
  quarantine: boolean;
  /** the source's generation the copy must equal (null: whatever the source has) */
  sourceGen: string | null;
  /** this node's generation now: what its copy holds (null: none) */
  targetGen: string | null;
  signal: AbortSignal;
  /**
   * Called once the source answered (it runs the module on `sourceGen`) and before the first change of the local
   * copy (quarantine included); resolves when the engine has persisted that the copy is incomplete, rejects when
   * the reintegration was abandoned meanwhile. A copy never changed keeps its generation and stays promotable.
   */
  beginCopy: () => Promise<void>;
}

export interface ReintegrationProgress {
  bytesDone: number;
  bytesTotal: number;
  rateBytesPerS: number;
}

export interface ReplicationStatus {
  role: FilesRole;
  /** primary: `live` (every change goes to the SECOND), `recording` (ALONE), `reintegrating` (the peer catches up),
   *  `waiting` (PRIM waiting for its SECOND to connect), `failing` (a change could not be replicated); secondary:
   *  `live`, `reintegrating`, `idle` */
  mode: string;
  dirs: string[];
  /** quarantines kept on this node (split brain), newest last */
  quarantines: { dir: string; path: string; files: number }[];
  /** the last reintegration: how it went */
  lastReintegration: { mode: string; bytes: number; ms: number; passes: number; freezeMs: number; at: string } | null;
  /** the live stream's traffic since the process serving the replicated directories started (absent: not known) */
  traffic?: ReplicationTraffic;
}

/**
 * Live replication traffic of one module on one node, both roles added up: counters since the replication host
 * started (they restart from 0 with it), gauges of now.
 */
export interface ReplicationTraffic {
  /** bytes on the wire of the live streams (frames, headers and tags included): PRIM changes out, SECOND acks out */
  bytesSent: number;
  bytesReceived: number;
  /** changes the SECOND acknowledged (PRIM side), changes received (SECOND side) */
  changesSent: number;
  changesReceived: number;
  /** PRIM now: changes sent and not acknowledged; waiting for room under the in-flight limit */
  inFlight: number;
  queued: number;
  /** PRIM: ms from sending a change to the ack that covered it, for the latest ack; null: no live stream, no ack yet */
  ackRttMs: number | null;
  /** SECOND now: changes received and not applied yet, and their bytes */
  backlog: number;
  backlogBytes: number;
}

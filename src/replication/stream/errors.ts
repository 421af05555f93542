/**
 * Why replication stopped, as the sender and the channel report it. The daemon turns any of these into the engine's
 * `replication-failed` event; `reason` says which, for logs and `tandem status`.
 *
 * Configuration problems the administrator can fix (wrong cluster key, node or address not in cluster.xml, module not
 * served by the peer) are UserErrors instead (src/errors.ts), and caller mistakes are BugErrors.
 */
export type ReplicationFailure =
  /** the TCP connection failed or was closed by the peer */
  | 'link-lost'
  /** no acknowledgement within sendtimeout, no frame within the dead time, or a handshake that did not finish */
  | 'timeout'
  /** a frame failed authentication: tampered, forged, replayed, reordered or dropped on the way */
  | 'tampered'
  /** the peer broke the protocol (oversized frame, undecodable message, unexpected message or seq) */
  | 'protocol'
  /** the SECOND could not apply a change (disk full, I/O error, refused path…): `errno`/`code` say why */
  | 'nack'
  /** this side closed the channel or the sender */
  | 'closed';

export class ReplicationError extends Error {
  override readonly name = 'ReplicationError';
  constructor(
    readonly reason: ReplicationFailure,
    message: string,
    /** for `nack`: the errno name on the SECOND (ENOSPC, EIO…) */
    readonly code?: string,
  ) {
    super(message);
  }
}

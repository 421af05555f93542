/**
 * Heartbeat transport: best-effort authenticated datagrams between the nodes of cluster.xml, one UDP socket per LAN
 * bound to this node's address on that LAN. Real: ./udp.ts; fake: ./fake.ts (an in-memory network with cuttable links).
 *
 * Contract:
 * - `send` is fire-and-forget: no delivery, ordering or duplicate guarantee. It never throws for network errors
 *   (they are counted).
 * - A datagram is delivered to `onMessage` only if its HMAC verifies with the cluster key, its source address is the
 *   claimed sender's address on that LAN in cluster.xml, and its (boot, seq) is newer than every one accepted before
 *   from that sender on that LAN. Everything else is dropped and counted in `stats()` by reason. The real transport
 *   also refuses datagrams that do not echo the receiver's own boot counter (replays across a restart, udp.ts); the
 *   fake, which carries no attacker, does not model that.
 * - The callback must not block; it runs on the event loop.
 */
export interface HeartbeatTransport {
  send(lan: string, to: string, body: unknown): void;
  onMessage(cb: (m: HeartbeatMessage) => void): void;
  stats(): TransportStats;
  close(): Promise<void>;
}

export interface HeartbeatMessage {
  lan: string;
  from: string;
  body: unknown;
}

export interface TransportStats {
  /** messages (one module's heartbeat, an inventory…) */
  sent: number;
  received: number;
  /** the datagrams that carried them (the real transport packs what is sent in one turn of the event loop) */
  datagrams: { sent: number; received: number };
  /**
   * by reason: badMac (wrong key or tampered), replay (not newer than the last accepted), stale (does not echo this
   * daemon's boot: recorded before it started, or sent before the peer heard it), badSource (address, port or LAN
   * not the sender's), malformed, unknownNode, misdirected (sent to another node: a replay in a cluster of more than
   * two nodes)
   */
  dropped: { badMac: number; replay: number; stale: number; badSource: number; malformed: number; unknownNode: number; misdirected: number };
  sendErrors: number;
}

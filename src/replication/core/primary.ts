/**
 * The primary side of file replication (PRIM/ALONE) as a pure state machine: `step(state, event) → {state,
 * actions}`, like the mirror engine. It decides what happens to the application's changes; the sink
 * (../files/sink.ts) feeds it events and applies its actions (records, the sender, timers through the Clock).
 *
 * Modes, and what a change of the application becomes in each:
 *   off       — not the primary: a change fails (the application is being stopped)
 *   record    — ALONE: the change goes into the persisted change record (base = what the peer holds)
 *   awaiting  — PRIM after a swap: the ready SECOND reattaches; changes wait (at most `awaitMs`)
 *   live      — every change goes to the SECOND, in order; fsync returns when the SECOND made it durable
 *   failing   — the SECOND did not take a change (or may not have): changes wait until the engine persisted a new
 *               generation (`outdated`) and the record is open; they are then recorded and released
 * Contract: a change is acknowledged to the application only in `record` (recorded) or `live` (taken by the
 * SECOND); in `awaiting` and `failing` it waits. A failure is reported to the engine once per replica generation.
 */

export type PrimaryMode = 'off' | 'record' | 'awaiting' | 'live' | 'failing';

export interface PrimaryState {
  mode: PrimaryMode;
  /** the generation the application writes in (the engine's) */
  gen: string | null;
  /** while awaiting/live/failing: the generation the SECOND holds */
  replicaGen: string | null;
  /** the change record is being opened (the mode changes to `record` once it is) */
  opening: boolean;
  /** the current replica's failure was reported to the engine */
  reported: boolean;
}

export type PrimaryEvent =
  /** the primary layout is entered (engine plan step `files`) */
  | { kind: 'enter'; gen: string; awaitPeer: boolean; recordBase: string | null }
  | { kind: 'leave' }
  /** the SECOND's live stream of `gen` runs (it reattached, or a reintegration's final pass handed over) */
  | { kind: 'live'; gen: string }
  /** the SECOND did not take a change (link lost, nack, timeout), or opened a new reintegration while live */
  | { kind: 'send-failed'; reason: string }
  /** awaiting: the SECOND did not reattach in time */
  | { kind: 'await-expired' }
  /** the engine persisted generation `gen`: the SECOND, which holds at best `peerHolds`, is outdated */
  | { kind: 'outdated'; gen: string; peerHolds: string | null }
  | { kind: 'record-opened' }
  | { kind: 'record-failed'; reason: string };

export type PrimaryAction =
  /** open the change record (asynchronous; answered with record-opened / record-failed) */
  | { kind: 'open-record'; base: string; fresh: boolean }
  /** close the live stream's sender (changes it did not acknowledge are recorded by flush-unacked later) */
  | { kind: 'close-sender' }
  /** the change record is no longer needed: the SECOND is live */
  | { kind: 'discard-record' }
  /** tell the engine (`replication-failed`) */
  | { kind: 'report-failure'; reason: string }
  /** start (or cancel) the awaiting deadline */
  | { kind: 'arm-await' }
  | { kind: 'disarm-await' }
  /** streamed writes that were sent but not acknowledged go into the record (after record-opened) */
  | { kind: 'flush-unacked' }
  /** the mode changed: writes stream ahead only in `live`; changes waiting on the mode look again */
  | { kind: 'mode'; mode: PrimaryMode }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; msg: string };

export const initialPrimary = (): PrimaryState => ({ mode: 'off', gen: null, replicaGen: null, opening: false, reported: false });

export function stepPrimary(prev: PrimaryState, e: PrimaryEvent): { state: PrimaryState; actions: PrimaryAction[] } {
  const s: PrimaryState = { ...prev };
  const actions: PrimaryAction[] = [];
  const setMode = (m: PrimaryMode) => {
    if (s.mode === m) return;
    s.mode = m;
    actions.push({ kind: 'mode', mode: m });
  };
  /** the SECOND's copy is behind: hold changes, tell the engine once, or record at once if it already moved on */
  const fail = (reason: string) => {
    actions.push({ kind: 'close-sender' }, { kind: 'disarm-await' });
    setMode('failing');
    if (s.gen !== null && s.gen !== s.replicaGen) return openRecord(s.replicaGen ?? s.gen, `${reason}; the engine already runs generation ${s.gen}`);
    actions.push({ kind: 'log', level: 'warn', msg: `${reason}; changes wait until the peer is marked outdated` });
    if (!s.reported) actions.push({ kind: 'report-failure', reason });
    s.reported = true;
  };
  const openRecord = (base: string, why: string) => {
    if (s.opening) return;
    s.opening = true;
    actions.push({ kind: 'open-record', base, fresh: true }, { kind: 'log', level: 'info', msg: `${why}: recording changes for the peer (its copy holds at best ${base})` });
  };

  switch (e.kind) {
    case 'enter':
      s.gen = e.gen;
      s.reported = false;
      if (e.awaitPeer) {
        s.replicaGen = e.gen;
        setMode('awaiting');
        actions.push({ kind: 'arm-await' });
      } else {
        s.replicaGen = null;
        s.opening = true;
        setMode('failing'); // nothing is served before the record is open
        actions.push({ kind: 'open-record', base: e.recordBase ?? e.gen, fresh: false });
      }
      break;
    case 'leave':
      actions.push({ kind: 'close-sender' }, { kind: 'disarm-await' });
      s.opening = false;
      s.replicaGen = null;
      setMode('off');
      break;
    case 'live':
      if (s.mode === 'off') break;
      s.replicaGen = e.gen;
      s.reported = false;
      s.opening = false;
      actions.push({ kind: 'disarm-await' }, { kind: 'discard-record' });
      setMode('live');
      break;
    case 'send-failed':
      if (s.mode === 'live' || s.mode === 'awaiting') fail(e.reason);
      break;
    case 'await-expired':
      if (s.mode === 'awaiting') fail(`the peer did not reattach its replication channel in time`);
      break;
    case 'outdated':
      s.gen = e.gen;
      if (s.mode === 'live' || s.mode === 'awaiting' || s.mode === 'failing') {
        actions.push({ kind: 'close-sender' }, { kind: 'disarm-await' });
        setMode('failing');
        openRecord(s.replicaGen ?? e.peerHolds ?? e.gen, `generation ${e.gen} persisted, the peer is outdated`);
      }
      break;
    case 'record-opened':
      if (!s.opening) break;
      s.opening = false;
      s.replicaGen = null;
      actions.push({ kind: 'flush-unacked' });
      setMode('record');
      break;
    case 'record-failed':
      s.opening = false;
      actions.push({ kind: 'log', level: 'error', msg: `cannot open the change record: ${e.reason}; changes stay blocked` });
      break;
  }
  return { state: s, actions };
}

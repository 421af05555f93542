/**
 * The secondary side's live stream (SECOND) as a pure state machine. A reintegration ends with the live stream
 * running (../files/reint-target.ts); after a swap or a daemon restart the ready SECOND reattaches to its PRIM
 * instead (`follow`). This machine decides when to attach and what an ended stream means; the driver
 * (../files/secondary.ts) opens channels, runs the receiver and the timers (Clock) and feeds the results back.
 *
 * Contract:
 * - It attaches only while the engine says `follow gen`, no stream runs, no reintegration copies, and the copy is
 *   clean (exactly its generation: no crash since); a refused attach is retried after ATTACH_RETRY_MS.
 * - A stream that ended because a change could not be applied leaves the copy outdated (a standing alarm); when the
 *   change had been acknowledged on receipt (async="second"), the engine is told at once (`report-behind`): the
 *   copy is behind what the PRIM counts as replicated.
 * - `live` is the generation the copy follows change by change; it is cleared by the failed change itself, not by
 *   the stream's end that follows: a reintegration asked in between must not count the copy as up to date.
 */

export const ATTACH_RETRY_MS = 2000;

export interface SecondaryState {
  /** the engine's directive: follow the PRIM's stream of this generation */
  following: string | null;
  /** the generation of the running live stream */
  live: string | null;
  attaching: boolean;
  /** a reintegration copies (it starts the stream itself at its end) */
  copying: boolean;
  /** an attach may be tried again from this monotonic time */
  retryAt: number;
  /** the copy may differ from its generation (unclean exit): never attached, only reintegrated */
  dirty: boolean;
  /** why the copy is outdated (an applied change failed), for the standing alarm; null: it is not */
  failed: string | null;
}

export type SecondaryEvent =
  | { kind: 'follow'; gen: string; now: number }
  | { kind: 'unfollow' }
  | { kind: 'tick'; now: number }
  | { kind: 'copy'; on: boolean }
  /** a live stream of `gen` runs (attached, or handed over by a reintegration) */
  | { kind: 'stream-started'; gen: string }
  /** the stream ended; `failed`: a change could not be applied */
  | { kind: 'stream-ended'; failed: string | null }
  /** a change failed to apply; `acknowledged`: it had been acknowledged on receipt */
  | { kind: 'apply-failed'; reason: string; acknowledged: boolean }
  | { kind: 'attach-result'; ok: boolean; now: number; dirty?: boolean }
  | { kind: 'leave' };

export type SecondaryAction =
  | { kind: 'attach'; gen: string }
  /** wake the machine with a tick at this monotonic time */
  | { kind: 'retry-at'; at: number }
  | { kind: 'report-behind'; reason: string }
  | { kind: 'log'; level: 'info' | 'warn'; msg: string };

export const initialSecondary = (): SecondaryState => ({
  following: null, live: null, attaching: false, copying: false, retryAt: 0, dirty: false, failed: null,
});

export function stepSecondary(prev: SecondaryState, e: SecondaryEvent): { state: SecondaryState; actions: SecondaryAction[] } {
  const s: SecondaryState = { ...prev };
  const actions: SecondaryAction[] = [];
  let now = -Infinity;
  switch (e.kind) {
    case 'follow':
      s.following = e.gen;
      now = e.now;
      break;
    case 'unfollow':
      s.following = null;
      break;
    case 'tick':
      now = e.now;
      break;
    case 'copy':
      s.copying = e.on;
      break;
    case 'stream-started':
      s.live = e.gen;
      s.failed = null;
      s.dirty = false;
      break;
    case 'stream-ended':
      s.live = null;
      if (e.failed) s.failed = e.failed;
      break;
    case 'apply-failed':
      s.live = null; // the copy is behind the stream from now on, even before the stream has ended
      s.failed = e.reason;
      if (e.acknowledged) actions.push({ kind: 'report-behind', reason: e.reason });
      break;
    case 'attach-result':
      s.attaching = false;
      if (e.dirty) {
        s.dirty = true;
        actions.push({ kind: 'log', level: 'info', msg: 'not attaching: this copy may differ from its generation (unclean exit); it will be reintegrated' });
      } else if (!e.ok) {
        s.retryAt = e.now + ATTACH_RETRY_MS;
        actions.push({ kind: 'retry-at', at: s.retryAt });
      }
      break;
    case 'leave':
      return { state: initialSecondary(), actions };
  }
  if (s.following && !s.live && !s.attaching && !s.copying && !s.dirty && s.failed === null) {
    if (now >= s.retryAt) {
      s.attaching = true;
      actions.push({ kind: 'attach', gen: s.following });
    } else if (e.kind === 'tick') {
      actions.push({ kind: 'retry-at', at: s.retryAt }); // woken early: wait for the rest
    }
  }
  return { state: s, actions };
}

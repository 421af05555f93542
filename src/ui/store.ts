/**
 * The dashboard's store (STYLE.md §7): polls the daemon's status through an injected `fetch`, keeps the last
 * snapshot and an event log made of what changed between two polls, and tells its subscribers after every poll
 * that changed something. Components read snapshots; only the store talks to the daemon.
 */
import type { StatusView } from '../daemon/views.js';
import { cellOf, entries, type Entry } from './model.js';

export interface Snapshot {
  status: StatusView | null;
  /** why the last poll failed (message and what to do), null when it succeeded */
  error: string | null;
  /** oldest first, at most `maxEvents` */
  events: string[];
  /** wall time of the last poll */
  at: Date;
  /** how many events were ever logged (events beyond `maxEvents` are dropped from `events`, not from this count) */
  eventCount: number;
}

/** HH:MM:SS of a wall time (local time of the node). */
export const clockOf = (d: Date) => d.toTimeString().slice(0, 8);

const key = (e: Entry) => `${e.kind}:${e.module}`;

/** What changed from one snapshot to the next, one line each: module states per node, VIP holders, alarms. */
export function stateChanges(prev: StatusView | null, next: StatusView): string[] {
  const out: string[] = [];
  const before = new Map(entries(prev).map((e) => [key(e), e]));
  for (const e of entries(next)) {
    const old = before.get(key(e));
    const nodes = e.kind === 'mirror' ? [e.view.node, e.view.peer.node] : [e.view.node, ...e.view.peers.map((p) => p.node)];
    if (!old) {
      out.push(`${e.module}: ${nodes.map((n) => `${n} ${cellOf(e, n)?.text ?? '?'}`).join(', ')}`);
      continue;
    }
    const oldNodes = old.kind === 'mirror' ? [old.view.node, old.view.peer.node] : [old.view.node, ...old.view.peers.map((p) => p.node)];
    for (const n of new Set([...oldNodes, ...nodes])) {
      const a = cellOf(old, n)?.text ?? 'gone';
      const b = cellOf(e, n)?.text ?? 'gone';
      if (a !== b) out.push(`${e.module} ${n}: ${a} → ${b}`);
    }
    if (e.kind === 'mirror' && old.kind === 'mirror') {
      for (const v of e.view.vips) {
        const was = old.view.vips.find((x) => x.addr === v.addr)?.holder ?? null;
        if (was !== v.holder) out.push(`${e.module}: virtual IP ${v.addr} ${v.holder ? `now on ${v.holder}` : `left ${was}`}`);
      }
    }
    const oldAlarms = new Set(old.kind === 'mirror' ? old.view.alarms.map((a) => a.code) : []);
    const newAlarms = e.kind === 'mirror' ? e.view.alarms : [];
    for (const a of newAlarms) if (!oldAlarms.has(a.code)) out.push(`${e.module}: alarm ${a.code}: ${a.message}`);
    for (const c of oldAlarms) if (!newAlarms.some((a) => a.code === c)) out.push(`${e.module}: alarm ${c} cleared`);
    before.delete(key(e));
  }
  for (const e of before.values()) out.push(`${e.module}: no longer loaded on ${next.node}`);
  return out;
}

export class StatusStore {
  private snap: Snapshot;
  private readonly subs = new Set<(s: Snapshot) => void>();
  private timer: NodeJS.Timeout | null = null;
  /** the error of the last poll, as thrown (a UserError keeps its hint), or null */
  lastFailure: Error | null = null;
  private stopped = true;

  constructor(
    private readonly fetch: () => Promise<StatusView>,
    private readonly now: () => Date = () => new Date(),
    private readonly maxEvents = 200,
  ) {
    this.snap = { status: null, error: null, events: [], at: now(), eventCount: 0 };
  }

  get snapshot(): Snapshot {
    return this.snap;
  }

  /** `cb` runs after each poll that changed the snapshot, and after `note`; it must not block. */
  subscribe(cb: (s: Snapshot) => void): () => void {
    this.subs.add(cb);
    return () => this.subs.delete(cb);
  }

  /** Adds a line to the event log (the outcome of an action), stamped with the time. */
  note(text: string): void {
    this.snap = { ...this.snap, ...this.logged([`${clockOf(this.now())} ${text}`]) };
    this.emit();
  }

  /** One poll: a failure is kept as `error` (and logged once), the last good status stays shown beside it. */
  async poll(): Promise<Snapshot> {
    const at = this.now();
    let next: Snapshot;
    try {
      const status = await this.fetch();
      const changes = stateChanges(this.snap.status, status).map((c) => `${clockOf(at)} ${c}`);
      const recovered = this.snap.error ? [`${clockOf(at)} the daemon answers again`] : [];
      next = { status, error: null, ...this.logged([...recovered, ...changes]), at };
      this.lastFailure = null;
    } catch (e) {
      const err = e as Error & { hint?: string };
      this.lastFailure = err;
      const error = `${err.message}${err.hint ? ` → ${err.hint}` : ''}`;
      next = { ...this.snap, error, ...this.logged(error === this.snap.error ? [] : [`${clockOf(at)} ${error}`]), at };
    }
    const changed = JSON.stringify({ ...next, at: 0 }) !== JSON.stringify({ ...this.snap, at: 0 }) || clockOf(next.at) !== clockOf(this.snap.at);
    this.snap = next;
    if (changed) this.emit();
    return next;
  }

  /** Polls every `intervalMs` from now (each poll starts `intervalMs` after the last one ended) until `stop`. */
  start(intervalMs: number): void {
    if (!this.stopped) return;
    this.stopped = false;
    const next = () => {
      this.timer = setTimeout(() => void this.poll().then(() => { if (!this.stopped) next(); }), intervalMs);
    };
    next();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private logged(add: string[]): Pick<Snapshot, 'events' | 'eventCount'> {
    const events = [...this.snap.events, ...add];
    return { events: events.length > this.maxEvents ? events.slice(events.length - this.maxEvents) : events, eventCount: this.snap.eventCount + add.length };
  }

  private emit(): void {
    for (const cb of this.subs) cb(this.snap);
  }
}

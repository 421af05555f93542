/**
 * The dashboard as a pure function (STYLE.md §7): (status snapshot, selection, size, events, prompt) → the lines to
 * show. No terminal, no socket, no clock here: the Ink component (dashboard.tsx) and the plain-text printer both
 * render what `dashboardFrame` returns, and the unit tests assert on it.
 */
import type { ModuleView, StatusView } from '../daemon/views.js';
import type { FarmView } from '../daemon/farm-view.js';

/** SafeKit's colours, plus `dim` for secondary text and `inverse` for the selected row. */
export type Colour = 'red' | 'orange' | 'green' | 'gray' | 'cyan';

export interface Segment {
  text: string;
  colour?: Colour;
  bold?: boolean;
  dim?: boolean;
  inverse?: boolean;
}

/** One screen line: segments whose texts together are at most `width` characters. */
export type Line = Segment[];

/** A module as the dashboard lists it: one row per mirror or farm module of the snapshot, in that order. */
export type Entry = { kind: 'mirror'; module: string; view: ModuleView } | { kind: 'farm'; module: string; view: FarmView };

export type Verb = 'swap' | 'stop' | 'start' | 'prim' | 'second';

/** The keys of the footer, in the order shown. */
export const KEYS: { key: string; verb: Verb }[] = [
  { key: 's', verb: 'swap' }, { key: 't', verb: 'stop' }, { key: 'r', verb: 'start' }, { key: 'p', verb: 'prim' }, { key: 'e', verb: 'second' },
];

/** An action asked for with its key: `ask` waits for y/n; `refused` says why it cannot be done (no question). */
export type Prompt = { kind: 'ask'; verb: Verb; module: string; text: string } | { kind: 'refused'; text: string };

export interface FrameInput {
  status: StatusView | null;
  /** why the last poll failed (the daemon is not running, …), shown instead of stale data being taken for live */
  error: string | null;
  /** index into entries(status); null: plain output, every module's details */
  selected: number | null;
  width: number;
  /** lines available; null: as many as the content needs (plain output) */
  height: number | null;
  /** the event log, oldest first ("19:55:01 demo node1: PRIM → ALONE") */
  events: string[];
  prompt: Prompt | null;
  /** the outcome of the last action ("swap demo: …"), shown above the footer */
  message: { text: string; ok: boolean } | null;
  /** wall time of the snapshot as HH:MM:SS */
  clock: string;
}

export function entries(s: StatusView | null): Entry[] {
  if (!s) return [];
  return [
    ...s.modules.map((view): Entry => ({ kind: 'mirror', module: view.module, view })),
    ...(s.farms ?? []).map((view): Entry => ({ kind: 'farm', module: view.module, view })),
  ];
}

/** STOP red; WAIT orange when transient, red when settled; ALONE/PRIM/SECOND/UP orange when transient, green ready. */
export function stateColour(state: string | null, ready: boolean | null): Colour {
  if (!state) return 'gray';
  if (state === 'STOP') return 'red';
  if (state === 'WAIT') return ready ? 'red' : 'orange';
  return ready ? 'green' : 'orange';
}

/** A state as text: a transient one ends with "…" (becoming), so it reads without colours too. */
export function stateLabel(state: string | null, ready: boolean | null): string {
  return state ? `${state}${ready === false ? '…' : ''}` : '?';
}

/** The nodes the snapshot knows, this node first, then the others by name. */
export function nodesOf(s: StatusView): string[] {
  const others = new Set<string>();
  for (const m of s.modules) others.add(m.peer.node);
  for (const f of s.farms ?? []) for (const p of f.peers) others.add(p.node);
  for (const f of s.farms ?? []) for (const n of f.members) others.add(n);
  others.delete(s.node);
  return [s.node, ...[...others].sort()];
}

/** What the module is on `node` as this node sees it, or null when the module does not run there. */
export function cellOf(e: Entry, node: string): Segment | null {
  if (e.kind === 'mirror') {
    const m = e.view;
    if (node === m.node) return { text: stateLabel(m.state, m.ready), colour: stateColour(m.state, m.ready) };
    if (node !== m.peer.node) return null;
    if (!m.peer.reachable) return { text: 'unreachable', colour: 'red' };
    return { text: stateLabel(m.peer.state, m.peer.ready), colour: stateColour(m.peer.state, m.peer.ready) };
  }
  const f = e.view;
  if (node === f.node) return { text: stateLabel(f.state, f.ready), colour: stateColour(f.state, f.ready) };
  const p = f.peers.find((x) => x.node === node);
  if (!p) return null;
  return { text: stateLabel(p.state, p.ready), colour: stateColour(p.state, p.ready) };
}

const ago = (ms: number | null) => (ms === null ? 'never heard' : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1073741824) return `${(n / 1048576).toFixed(1)} MiB`;
  return `${(n / 1073741824).toFixed(2)} GiB`;
}

/** `[████░░░░] 42%` in `width` characters (the percentage included). */
export function progressBar(done: number, total: number, width: number): Segment[] {
  const frac = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  const inner = Math.max(1, width - 3 - pct.length);
  const full = Math.round(frac * inner);
  return [{ text: '[' }, { text: '█'.repeat(full), colour: 'orange' }, { text: '░'.repeat(inner - full), dim: true }, { text: `] ${pct}` }];
}

/** ETA of a resync: remaining bytes / rate (null while the rate is not known yet). */
export function etaSeconds(done: number, total: number, rate: number): number | null {
  return rate > 0 ? Math.max(0, Math.ceil((total - done) / rate)) : null;
}

function formatEta(s: number | null): string {
  if (s === null) return 'ETA ?';
  return s < 120 ? `ETA ${s} s` : `ETA ${Math.floor(s / 60)} min ${s % 60} s`;
}

/** The detail lines of one module (peer and heartbeats per LAN, VIP, resync, replication, resources, farm, alarms). */
export function detailLines(e: Entry, width: number): Line[] {
  return e.kind === 'mirror' ? mirrorDetail(e.view, width) : farmDetail(e.view);
}

function resourceSegments(rows: ModuleView['resources']): Line {
  const watched = rows.filter((r) => r.by !== 'derived');
  if (!watched.length) return [{ text: '  resources: ' }, { text: 'none configured', dim: true }];
  const out: Line = [{ text: '  resources: ' }];
  watched.forEach((r, i) => {
    if (i) out.push({ text: ', ' });
    out.push({ text: `${r.name} ` }, { text: r.state, colour: r.state === 'up' ? 'green' : r.state === 'down' ? 'red' : 'orange' });
    if (!r.active) out.push({ text: ' (not watched now)', dim: true });
  });
  return out;
}

function alarmLines(alarms: { code: string; message: string }[]): Line[] {
  return alarms.map((a) => [{ text: '  ' }, { text: `alarm ${a.code}`, colour: 'red', bold: true }, { text: `: ${a.message}` }]);
}

function mirrorDetail(m: ModuleView, width: number): Line[] {
  const lines: Line[] = [];
  const head: Line = [{ text: `${m.module}`, bold: true }, { text: ' (mirror)  ' }, { text: `${m.node} ` },
    { text: stateLabel(m.state, m.ready), colour: stateColour(m.state, m.ready) }];
  if (m.state === 'WAIT' && m.waitReason) head.push({ text: ` [${m.waitReason}]`, dim: true });
  head.push({ text: `   peer ${m.peer.node} ` });
  head.push(m.peer.reachable ? { text: stateLabel(m.peer.state, m.peer.ready), colour: stateColour(m.peer.state, m.peer.ready) } : { text: 'unreachable', colour: 'red' });
  lines.push(head);
  const hb: Line = [{ text: '  heartbeats: ' }];
  m.peer.lans.forEach((l, i) => {
    if (i) hb.push({ text: ' · ' });
    hb.push({ text: `${l.name} ` }, l.up ? { text: 'up', colour: 'green' } : { text: 'down', colour: 'red' }, { text: ` (${ago(l.lastHeardMsAgo)})`, dim: true });
  });
  lines.push(hb);
  for (const v of m.vips) lines.push([{ text: `  virtual IP ${v.addr} on ` }, v.holder ? { text: v.holder, bold: true } : { text: 'no node', colour: 'red' }]);
  if (m.reintegration) {
    const r = m.reintegration;
    const text = ` ${formatBytes(r.bytesDone)}/${formatBytes(r.bytesTotal)} ${formatBytes(r.rateBytesPerS)}/s ${formatEta(etaSeconds(r.bytesDone, r.bytesTotal, r.rateBytesPerS))}`;
    lines.push([{ text: '  resync ' }, ...progressBar(r.bytesDone, r.bytesTotal, Math.max(12, width - 9 - text.length)), { text }]);
  }
  const rp = m.replication;
  if (rp) {
    lines.push([{ text: `  replication ${rp.dirs.join(', ')}: ` }, rp.role === 'off' ? { text: 'not in use', dim: true }
      : { text: `${rp.role}, ${rp.mode}`, colour: rp.mode === 'live' ? 'green' : rp.mode === 'failing' ? 'red' : 'orange' }]);
    for (const q of rp.quarantines) lines.push([{ text: '  ' }, { text: 'quarantine', colour: 'orange' }, { text: ` of ${q.dir}: ${q.files} file(s) in ${q.path}` }]);
  }
  lines.push(resourceSegments(m.resources));
  if (m.rule) lines.push([{ text: '  ' }, { text: `rule ${m.rule.label}`, colour: 'orange' }, { text: `: ${m.rule.action}() because ${m.rule.because.join(', ') || 'its condition holds'}` }]);
  if (!m.switches.failover) lines.push([{ text: '  ' }, { text: 'automatic failover is off', colour: 'orange' }]);
  if (!m.switches.errd) lines.push([{ text: '  ' }, { text: 'process monitoring (errd) is off', colour: 'orange' }]);
  if (!m.switches.checkers) lines.push([{ text: '  ' }, { text: 'checkers are off', colour: 'orange' }]);
  lines.push(...alarmLines(m.alarms));
  return lines;
}

function farmDetail(f: FarmView): Line[] {
  const lines: Line[] = [];
  const head: Line = [{ text: f.module, bold: true }, { text: ' (farm)  ' }, { text: `${f.node} ` },
    { text: stateLabel(f.state, f.ready), colour: stateColour(f.state, f.ready) }];
  if (f.state === 'WAIT' && f.waitReason) head.push({ text: ` [${f.waitReason}]`, dim: true });
  head.push({ text: `   serving: ${f.members.join(', ') || 'none'}` });
  lines.push(head);
  if (f.peers.length) {
    const p: Line = [{ text: '  peers: ' }];
    f.peers.forEach((x, i) => {
      if (i) p.push({ text: ' · ' });
      p.push({ text: `${x.node} ` }, { text: stateLabel(x.state, x.ready), colour: stateColour(x.state, x.ready) },
        { text: ` (${ago(x.lastHeardMsAgo)}${x.lans.length ? ` on ${x.lans.join(', ')}` : ''})`, dim: true });
    });
    lines.push(p);
  }
  for (const g of f.groups) {
    const shares = Object.entries(g.shares).sort(([a], [b]) => a.localeCompare(b)).map(([n, c]) => `${n} ${c}`).join(', ');
    lines.push([{ text: `  buckets ${g.name}: ` }, { text: `this node ${g.owned}/${g.buckets}`, bold: true }, { text: `; shares ${shares || 'none'}` }]);
  }
  if (f.holdBack) lines.push([{ text: '  ' }, { text: 'not accepting clients yet', colour: 'orange' }, { text: `: ${f.holdBack}` }]);
  for (const v of f.vips) lines.push([{ text: `  virtual IP ${v.addr}: ` }, v.held ? { text: 'held here', colour: 'green' } : { text: 'not held here', dim: true }]);
  lines.push(resourceSegments(f.resources));
  return lines;
}

/** The VIP column of a module row. */
function vipCell(e: Entry): string {
  if (e.kind === 'mirror') return e.view.vips.map((v) => `${v.addr} on ${v.holder ?? 'none'}`).join(', ');
  return e.view.vips.map((v) => v.addr).join(', ');
}

/**
 * What a key will do to the selected module, said exactly, e.g. "swap demo: node1 PRIM → SECOND, node2 becomes PRIM
 * — y/n". The action runs on this node's daemon (as `tandem <verb> -m M` run here). A verb the module's kind does
 * not have, or a swap without a PRIM and a SECOND, is refused here with what to do instead.
 */
export function describe(verb: Verb, e: Entry): Prompt {
  const ask = (text: string): Prompt => ({ kind: 'ask', verb, module: e.module, text: `${text} — y/n` });
  if (e.kind === 'farm') {
    const f = e.view;
    const others = f.members.filter((n) => n !== f.node);
    if (verb === 'stop') return ask(`stop ${f.module} on ${f.node}: ${f.node} stops serving${others.length ? `; its clients go to ${others.join(', ')}` : '; no node serves the virtual IP then'}`);
    if (verb === 'start') return ask(`start ${f.module} on ${f.node}: ${f.node} joins the farm and takes its share of the clients`);
    return { kind: 'refused', text: `${verb} is for mirror modules; ${f.module} is a farm module: r starts it on ${f.node}, t stops it` };
  }
  const m = e.view;
  const self = `${m.node} ${stateLabel(m.state, m.ready)}`;
  const peer = m.peer.node;
  switch (verb) {
    case 'swap': {
      const peerState = m.peer.reachable ? m.peer.state : null;
      const prim = m.state === 'PRIM' ? m.node : peerState === 'PRIM' ? peer : null;
      const second = m.state === 'SECOND' ? m.node : peerState === 'SECOND' ? peer : null;
      if (!prim || !second || !m.ready || !m.peer.ready) {
        return { kind: 'refused', text: `swap needs one node PRIM and the other SECOND, both ready; ${m.module} is ${self}, ${peer} ${m.peer.reachable ? stateLabel(m.peer.state, m.peer.ready) : 'unreachable'}` };
      }
      return ask(`swap ${m.module}: ${prim} PRIM → SECOND, ${second} becomes PRIM`);
    }
    case 'stop': {
      const running = m.state === 'PRIM' || m.state === 'ALONE';
      const takeover = m.peer.reachable && m.peer.state === 'SECOND' && m.peer.ready;
      if (running) return ask(`stop ${m.module} on ${m.node} (${m.state}): the application stops here; ${takeover ? `${peer} (SECOND) takes over as ALONE` : 'no node runs it then'}`);
      if (m.state === 'SECOND') return ask(`stop ${m.module} on ${m.node} (SECOND): ${m.node} stops taking ${peer}'s data; ${peer} goes on ALONE`);
      return ask(`stop ${m.module} on ${m.node} (${stateLabel(m.state, m.ready)}): it stays STOP, also across reboots`);
    }
    case 'start':
      return ask(`start ${m.module} on ${m.node} (now ${stateLabel(m.state, m.ready)}): it looks for ${peer} and takes the role its data allows`);
    case 'prim':
      return ask(`prim ${m.module} on ${m.node}: ${m.node} becomes primary and its data the reference; ${peer} resyncs from it when it joins`);
    case 'second':
      return ask(`second ${m.module} on ${m.node}: ${m.node} becomes secondary and takes ${peer}'s data`);
  }
}

const pad = (s: string, w: number) => (s.length >= w ? `${s.slice(0, Math.max(0, w - 1))} ` : s.padEnd(w));

/** Splits `text` at spaces into lines of at most `width` characters (a longer word is cut). */
export function wrapText(text: string, width: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const word of text.split(' ')) {
    if (cur && cur.length + 1 + word.length > width) {
      out.push(cur);
      cur = '';
    }
    cur = cur ? `${cur} ${word}` : word;
    while (cur.length > width) {
      out.push(cur.slice(0, width));
      cur = cur.slice(width);
    }
  }
  if (cur || !out.length) out.push(cur);
  return out;
}

/** Cuts a line to `width` characters (an ellipsis marks the cut). */
export function fit(line: Line, width: number): Line {
  const out: Line = [];
  let left = width;
  const total = line.reduce((n, s) => n + s.text.length, 0);
  if (total <= width) return line;
  for (const s of line) {
    if (left <= 1) break;
    const take = s.text.slice(0, left - 1);
    out.push({ ...s, text: take });
    left -= take.length;
  }
  out.push({ text: '…', dim: true });
  return out;
}

export const lineText = (l: Line) => l.map((s) => s.text).join('');

/** The whole screen. With a height, every line but those of the event log is kept and the log takes what is left. */
export function dashboardFrame(inp: FrameInput): Line[] {
  const { status: s, width } = inp;
  const rule: Line = [{ text: '─'.repeat(width), dim: true }];
  const head: Line = [{ text: 'tandem dashboard', bold: true }, { text: s ? ` · node ${s.node}` : '' }, { text: ` · ${inp.clock}`, dim: true }];
  const top: Line[] = [head];
  if (inp.error) top.push([{ text: 'cannot read the status: ', colour: 'red', bold: true }, { text: inp.error, colour: 'red' }]);
  const list = entries(s);
  const body: Line[] = [];
  if (s && list.length === 0) {
    const none = !(s.pending ?? []).length && !(s.invalid ?? []).length;
    body.push([{ text: none ? `no modules installed on ${s.node}: install one with \`tandem install -m NAME <dir>\`` : `no module runs on ${s.node}:`, colour: 'orange' }]);
    pendingAndInvalid(s, body);
  }
  if (s && list.length) {
    const nodes = nodesOf(s);
    const nameW = Math.min(16, Math.max(10, ...list.map((e) => e.module.length + 3)));
    const vipW = Math.max(0, ...list.map((e) => vipCell(e).length));
    const cellW = Math.max(8, Math.min(16, Math.floor((width - nameW - Math.min(vipW, 26)) / nodes.length)));
    const shownNodes = nodes.slice(0, Math.max(1, Math.floor((width - nameW) / cellW)));
    body.push([{ text: pad('  MODULE', nameW), dim: true }, ...shownNodes.map((n) => ({ text: pad(n, cellW), bold: true })), { text: 'VIRTUAL IP', dim: true }]);
    list.forEach((e, i) => {
      const sel = inp.selected === i;
      const row: Line = [{ text: pad(`${sel ? '▶ ' : '  '}${e.module}`, nameW), bold: sel, inverse: sel }];
      for (const n of shownNodes) {
        const c = cellOf(e, n);
        row.push(c ? { ...c, text: pad(c.text, cellW) } : { text: pad('·', cellW), dim: true });
      }
      row.push({ text: vipCell(e) });
      body.push(row);
    });
    pendingAndInvalid(s, body);
    body.push(rule);
    const detailOf = inp.selected === null ? list : list[Math.min(inp.selected, list.length - 1)] ? [list[Math.min(inp.selected, list.length - 1)]!] : [];
    for (const e of detailOf) body.push(...detailLines(e, width));
  }
  // the question and the outcome are never cut: they wrap
  const foot: Line[] = [];
  if (inp.message) foot.push(...wrapText(inp.message.text, width).map((t): Line => [{ text: t, colour: inp.message!.ok ? 'green' : 'red' }]));
  if (inp.prompt) foot.push(...wrapText(inp.prompt.text, width).map((t): Line => [{ text: t, colour: inp.prompt!.kind === 'ask' ? 'cyan' : 'orange', bold: true }]));
  else if (inp.selected !== null) {
    const full = `↑↓ select  ${KEYS.map((k) => `${k.key} ${k.verb}`).join('  ')}  q quit`;
    foot.push([{ text: full.length <= width ? full : `↑↓ ${KEYS.map((k) => k.key).join(' ')} · q quit`, dim: true }]);
  }
  const logTitle: Line = [{ text: 'events', bold: true }];
  let events = inp.events.map((t): Line => [{ text: `  ${t}` }]);
  let fixed = [...top, rule, ...body];
  if (inp.height !== null) {
    // lines = fixed + rule + title + events + footer; the log gets at least 2 lines: the details give way first
    const maxFixed = inp.height - foot.length - 2 - 2;
    if (fixed.length > maxFixed) fixed = [...fixed.slice(0, Math.max(1, maxFixed - 1)), [{ text: '…', dim: true }]];
    const left = Math.max(0, inp.height - fixed.length - 2 - foot.length);
    events = events.slice(Math.max(0, events.length - left));
    while (events.length < left) events.push([]);
  }
  if (!events.length && inp.height === null) events = [[{ text: '  (none yet)', dim: true }]];
  const all = [...fixed, rule, logTitle, ...events, ...foot].map((l) => fit(l, width));
  return inp.height === null ? all : all.slice(Math.max(0, all.length - inp.height));
}

/** Installed modules that do not run here (their peer is not known yet) or were refused (invalid configuration). */
function pendingAndInvalid(s: StatusView, body: Line[]): void {
  for (const a of s.invalid ?? []) body.push([{ text: `  ${a.module}: not loaded, invalid configuration: ${a.error}`, colour: 'red' }]);
  for (const p of s.pending ?? []) body.push([{ text: `  ${p.module}: not running here: ${p.reason}`, colour: 'orange' }]);
}

/** The frame as plain text (no colours): what `--once` prints off a terminal, and what tests compare. */
export function frameText(lines: Line[]): string {
  return lines.map((l) => lineText(l).trimEnd()).join('\n');
}

/** What the dashboard's keys change: the selection, the question asked, the last outcome, the action to run. */
export interface UiState {
  selected: number;
  prompt: Prompt | null;
  message: { text: string; ok: boolean } | null;
  /** set by y: the action the component runs (once per id) */
  run: { id: number; verb: Verb; module: string; what: string } | null;
  quit: boolean;
}

export const initialUi: UiState = { selected: 0, prompt: null, message: null, run: null, quit: false };

export interface KeyPress {
  input: string;
  up?: boolean;
  down?: boolean;
  escape?: boolean;
  ctrl?: boolean;
}

/**
 * One key: while a question is asked only y (run it), n and Esc (cancel) count; otherwise ↑/↓ move the selection
 * over `list`, an action key asks (or says why not), q and Ctrl-C quit.
 */
export function onKey(s: UiState, k: KeyPress, list: Entry[]): UiState {
  const sel = Math.min(s.selected, Math.max(0, list.length - 1));
  if (s.prompt?.kind === 'ask') {
    if (k.input === 'y') {
      const what = s.prompt.text.replace(/ — y\/n$/, '');
      return { ...s, prompt: null, message: { text: `${what}: asked the daemon…`, ok: true }, run: { id: (s.run?.id ?? 0) + 1, verb: s.prompt.verb, module: s.prompt.module, what } };
    }
    if (k.input === 'n' || k.escape) return { ...s, prompt: null, message: { text: 'nothing done', ok: true } };
    return s;
  }
  if (k.input === 'q' || (k.ctrl && k.input === 'c')) return { ...s, quit: true };
  if (k.up) return { ...s, selected: Math.max(0, sel - 1), prompt: null };
  if (k.down) return { ...s, selected: Math.min(Math.max(0, list.length - 1), sel + 1), prompt: null };
  if (k.escape) return { ...s, prompt: null };
  const key = KEYS.find((x) => x.key === k.input);
  const e = list[sel];
  if (key && e) return { ...s, selected: sel, message: null, prompt: describe(key.verb, e) };
  return s;
}

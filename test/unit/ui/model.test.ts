/**
 * The dashboard's pure view (src/ui/model.ts): what a frame shows for a snapshot, at a size, and what each key
 * says it will do. No terminal involved.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cellOf, dashboardFrame, describe, entries, etaSeconds, frameText, initialUi, lineText, onKey, progressBar, stateColour, wrapText, type FrameInput } from '../../../src/ui/model.js';
import { farm, mirror, status } from './fixtures.js';

const base = (o: Partial<FrameInput>): FrameInput => ({
  status: status('node1', [mirror('node1', 'PRIM', 'node2', 'SECOND')]), error: null, selected: 0, width: 80, height: 23,
  events: [], prompt: null, message: null, clock: '12:00:00', ...o,
});

test("SafeKit's colours: STOP red, WAIT orange/red, the others orange while transient and green when ready", () => {
  assert.is(stateColour('STOP', true), 'red');
  assert.is(stateColour('STOP', false), 'red');
  assert.is(stateColour('WAIT', false), 'orange');
  assert.is(stateColour('WAIT', true), 'red');
  for (const s of ['ALONE', 'PRIM', 'SECOND', 'UP']) {
    assert.is(stateColour(s, false), 'orange', s);
    assert.is(stateColour(s, true), 'green', s);
  }
  assert.is(stateColour(null, null), 'gray');
});

test('a frame at 80×24 holds the module row with both nodes, the VIP holder, heartbeats per LAN and the keys', () => {
  const lines = dashboardFrame(base({}));
  const text = frameText(lines);
  assert.is(lines.length, 23);
  for (const l of lines) assert.ok(lineText(l).length <= 80, lineText(l));
  assert.match(text, /▶ demo\s+PRIM\s+SECOND\s+198\.51\.100\.10 on node1/);
  assert.match(text, /node1\s+node2/);
  assert.match(text, /heartbeats: default up \(120 ms\) · replication up \(130 ms\)/);
  assert.match(text, /virtual IP 198\.51\.100\.10 on node1/);
  assert.match(text, /resources: proc\.web up/);
  assert.match(text, /↑↓ select {2}s swap {2}t stop {2}r start {2}p prim {2}e second {2}q quit/);
  // the cells carry the colours of the states
  const row = lines.find((l) => lineText(l).includes('▶ demo'))!;
  assert.is(row.find((s) => s.text.startsWith('PRIM'))!.colour, 'green');
});

test('a transient state ends with "…" and is orange; an unreachable peer is red', () => {
  const e = entries(status('node2', [mirror('node2', 'ALONE', 'node1', 'PRIM', { ready: false, reachable: false })]))[0]!;
  assert.equal(cellOf(e, 'node2'), { text: 'ALONE…', colour: 'orange' });
  assert.equal(cellOf(e, 'node1'), { text: 'unreachable', colour: 'red' });
  assert.is(cellOf(e, 'node9'), null);
});

test('the frame re-fits: every size gives exactly its height in lines of at most its width; the event log takes what is left', () => {
  const events = Array.from({ length: 50 }, (_, i) => `12:00:${String(i).padStart(2, '0')} event ${i}`);
  for (const [w, h] of [[80, 23], [60, 14], [120, 39], [40, 10]] as const) {
    const lines = dashboardFrame(base({ width: w, height: h, events }));
    assert.is(lines.length, h, `${w}×${h}`);
    for (const l of lines) assert.ok(lineText(l).length <= w, `${w}×${h}: ${lineText(l)}`);
    const text = frameText(lines);
    assert.match(text, /event 49/, `${w}×${h}: the newest event is shown`);
    assert.match(text, /q quit/, `${w}×${h}: the footer is shown`);
  }
  const small = frameText(dashboardFrame(base({ width: 80, height: 23, events })));
  const tall = frameText(dashboardFrame(base({ width: 80, height: 39, events })));
  assert.ok(tall.split('\n').filter((l) => /event \d+/.test(l)).length > small.split('\n').filter((l) => /event \d+/.test(l)).length);
});

test('a resync shows a progress bar with bytes, rate and ETA', () => {
  const m = mirror('node2', 'SECOND', 'node1', 'PRIM', { ready: false, reintegration: { bytesDone: 50 * 1048576, bytesTotal: 100 * 1048576, rateBytesPerS: 10 * 1048576 } });
  const text = frameText(dashboardFrame(base({ status: status('node2', [m]) })));
  assert.match(text, /resync \[█+░+\] {2}50% 50\.0 MiB\/100\.0 MiB 10\.0 MiB\/s ETA 5 s/);
  assert.is(etaSeconds(0, 100, 0), null);
  assert.is(lineText(progressBar(1, 4, 20)), `[${'█'.repeat(3)}${'░'.repeat(10)}]  25%`);
});

test('a farm module: a column per node, this node\'s buckets and every member\'s share', () => {
  const s = status('node1', [], [farm('node1')]);
  const text = frameText(dashboardFrame(base({ status: s, height: null })));
  assert.match(text, /node1\s+node2\s+node3/);
  assert.match(text, /▶ farm-web\s+UP\s+UP\s+UP…\s+198\.51\.100\.20/);
  assert.match(text, /buckets web: this node 66\/256; shares node1 66, node2 56, node3 134/);
  assert.match(text, /peers: node2 UP \(48 ms on default\) · node3 UP… \(51 ms on default\)/);
});

test('alarms, the failover switch and a waiting rule are shown', () => {
  const m = mirror('node2', 'ALONE', 'node1', 'PRIM', { reachable: false, alarms: [{ code: 'peer-lost', message: 'node1 is not heard on any LAN' }],
    switches: { errd: true, checkers: true, failover: false } });
  const text = frameText(dashboardFrame(base({ status: status('node2', [m]) })));
  assert.match(text, /alarm peer-lost: node1 is not heard on any LAN/);
  assert.match(text, /automatic failover is off/);
  assert.match(text, /heartbeats: default down/);
});

test('modules that do not run are listed with why, also when none runs', () => {
  const s = { ...status('node1', []), invalid: [{ module: 'beta', error: 'its port 4999 is also alpha\'s' }], pending: [{ module: 'trio', reason: 'installed on 3 nodes' }] };
  const text = frameText(dashboardFrame(base({ status: s })));
  assert.match(text, /no module runs on node1:\n {2}beta: not loaded, invalid configuration: its port 4999 is also alpha's\n {2}trio: not running here: installed on 3 nodes/);
  assert.match(frameText(dashboardFrame(base({ status: status('node1', []) }))), /no modules installed on node1: install one with `tandem install -m NAME <dir>`/);
  const both = frameText(dashboardFrame(base({ status: { ...s, modules: [mirror('node1', 'PRIM', 'node2', 'SECOND')] } })));
  assert.match(both, /▶ demo[^\n]*\n {2}beta: not loaded/);
});

test('the daemon not answering is said on the screen', () => {
  const text = frameText(dashboardFrame(base({ status: null, error: 'no tandem daemon is running → start it with `tandem daemon`' })));
  assert.match(text, /cannot read the status: no tandem daemon is running → start it/);
});

test('plain output (no selection, no height) shows every module\'s details and no footer', () => {
  const s = status('node1', [mirror('node1', 'PRIM', 'node2', 'SECOND')], [farm('node1')]);
  const text = frameText(dashboardFrame(base({ status: s, selected: null, height: null })));
  assert.match(text, /demo \(mirror\)/);
  assert.match(text, /farm-web \(farm\)/);
  assert.not.match(text, /q quit/);
  assert.match(text, /\(none yet\)/);
});

test('the confirmation says exactly what a swap does, from either node', () => {
  const [p1] = entries(status('node1', [mirror('node1', 'PRIM', 'node2', 'SECOND')]));
  const [p2] = entries(status('node2', [mirror('node2', 'SECOND', 'node1', 'PRIM')]));
  assert.equal(describe('swap', p1!), { kind: 'ask', verb: 'swap', module: 'demo', text: 'swap demo: node1 PRIM → SECOND, node2 becomes PRIM — y/n' });
  assert.is((describe('swap', p2!) as { text: string }).text, 'swap demo: node1 PRIM → SECOND, node2 becomes PRIM — y/n');
});

test('a swap without a ready PRIM and SECOND is refused with the states; a farm has no swap', () => {
  const [alone] = entries(status('node2', [mirror('node2', 'ALONE', 'node1', null, { reachable: false })]));
  const r = describe('swap', alone!);
  assert.is(r.kind, 'refused');
  assert.match((r as { text: string }).text, /swap needs one node PRIM and the other SECOND, both ready; demo is node2 ALONE, node1 unreachable/);
  const [f] = entries(status('node1', [], [farm('node1')]));
  assert.equal(describe('prim', f!), { kind: 'refused', text: 'prim is for mirror modules; farm-web is a farm module: r starts it on node1, t stops it' });
  assert.match((describe('stop', f!) as { text: string }).text, /^stop farm-web on node1: node1 stops serving; its clients go to node2, node3 — y\/n$/);
});

test('stop, start, prim and second say which node and what follows', () => {
  const [p] = entries(status('node1', [mirror('node1', 'PRIM', 'node2', 'SECOND')]));
  const [sec] = entries(status('node2', [mirror('node2', 'SECOND', 'node1', 'PRIM')]));
  const [alone] = entries(status('node1', [mirror('node1', 'ALONE', 'node2', 'STOP')]));
  const t = (v: Parameters<typeof describe>[0], e: typeof p) => (describe(v, e!) as { text: string }).text;
  assert.is(t('stop', p), 'stop demo on node1 (PRIM): the application stops here; node2 (SECOND) takes over as ALONE — y/n');
  assert.is(t('stop', alone), 'stop demo on node1 (ALONE): the application stops here; no node runs it then — y/n');
  assert.is(t('stop', sec), "stop demo on node2 (SECOND): node2 stops taking node1's data; node1 goes on ALONE — y/n");
  assert.match(t('start', alone), /^start demo on node1 \(now ALONE\)/);
  assert.match(t('prim', sec), /^prim demo on node2: node2 becomes primary and its data the reference; node1 resyncs from it/);
  assert.match(t('second', p), /^second demo on node1: node1 becomes secondary and takes node2's data/);
});

test('a prompt replaces the footer; a message sits above it', () => {
  const text = frameText(dashboardFrame(base({ prompt: { kind: 'ask', verb: 'stop', module: 'demo', text: 'stop demo on node1 — y/n' }, message: { text: 'nothing done', ok: true } })));
  assert.match(text, /nothing done\nstop demo on node1 — y\/n$/);
  assert.not.match(text, /q quit/);
});

test('a long question wraps instead of being cut', () => {
  const text = "stop demo on node2 (SECOND): node2 stops taking node1's data; node1 goes on ALONE — y/n";
  const lines = dashboardFrame(base({ width: 60, height: 20, prompt: { kind: 'ask', verb: 'stop', module: 'demo', text } }));
  assert.is(lines.length, 20);
  const shown = lines.slice(-2).map(lineText);
  assert.ok(shown.every((l) => l.length <= 60));
  assert.is(shown.join(' '), text);
  assert.equal(wrapText('abcdefghij', 4), ['abcd', 'efgh', 'ij']);
});

test('keys: y runs only what was asked, n cancels, ↑↓ stay in the list, q quits', () => {
  const list = entries(status('node1', [mirror('node1', 'PRIM', 'node2', 'SECOND')], [farm('node1')]));
  let s = onKey(initialUi, { input: 'y' }, list);
  assert.is(s.run, null, 'y without a question does nothing');
  s = onKey(s, { input: '', up: true }, list);
  assert.is(s.selected, 0);
  s = onKey(onKey(onKey(s, { input: '', down: true }, list), { input: '', down: true }, list), { input: '', down: true }, list);
  assert.is(s.selected, 1);
  s = onKey(s, { input: 't' }, list);
  assert.is(s.prompt?.kind, 'ask');
  s = onKey(s, { input: 'x' }, list);
  assert.is(s.prompt?.kind, 'ask', 'another key leaves the question');
  s = onKey(s, { input: 'y' }, list);
  assert.equal(s.run, { id: 1, verb: 'stop', module: 'farm-web', what: 'stop farm-web on node1: node1 stops serving; its clients go to node2, node3' });
  assert.is(s.prompt, null);
  s = onKey(onKey(s, { input: 'r' }, list), { input: 'n' }, list);
  assert.is(s.run?.id, 1, 'n runs nothing');
  assert.equal(s.message, { text: 'nothing done', ok: true });
  assert.is(onKey(s, { input: 'q' }, list).quit, true);
  assert.is(onKey(s, { input: 'c', ctrl: true }, list).quit, true);
});

test.run();

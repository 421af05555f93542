/**
 * `tandem dashboard` in a real pseudo-terminal (node-pty) on a lab node, read through a terminal emulator
 * (@xterm/headless) so the assertions see the screen a user sees: it renders the pair, answers keys (stop and start
 * with confirmation, and the module's state changes), shows the resync of the restarted SECOND as a progress bar,
 * re-fits on resize, follows a failover (power-off of the PRIM), quits on q. One lab for the file; the frames are printed (ANSI stripped) for the record.
 */
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import pty from 'node-pty';
import xterm from '@xterm/headless';
import { controlRequest } from '../../src/daemon/control.js';
import { startPair } from '../../src/lab/failover.js';
import type { Lab } from '../../src/lab/lab.js';
import { createMirrorLab } from '../../src/lab/mirror-lab.js';
import { repoRoot } from '../../src/lab/spec.js';

interface Screen {
  proc: pty.IPty;
  term: InstanceType<typeof xterm.Terminal>;
  text: () => string;
  exited: Promise<number>;
  resize: (cols: number, rows: number) => void;
  key: (k: string) => void;
}

/**
 * Starts `tandem lab exec <node> -- tandem dashboard` (as README says to) in a pty of cols×rows; the screen is what
 * the emulator shows.
 */
function openDashboard(lab: Lab, node: string, cols: number, rows: number): Screen {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['FORCE_COLOR', 'NO_COLOR'].includes(k) && !k.startsWith('TANDEM_'))) as Record<string, string>;
  const proc = pty.spawn(process.execPath, [path.join(repoRoot(), 'bin', 'tandem'), 'lab', 'exec', '--lab', lab.prefix, node, '--', 'tandem', 'dashboard'],
    { cols, rows, name: 'xterm-256color', env: { ...env, TERM: 'xterm-256color' } });
  const term = new xterm.Terminal({ cols, rows, allowProposedApi: true });
  proc.onData((d) => term.write(d));
  const exited = new Promise<number>((resolve) => proc.onExit((e) => resolve(e.exitCode)));
  const text = () => {
    const b = term.buffer.active;
    const out: string[] = [];
    for (let i = 0; i < term.rows; i++) out.push(b.getLine(b.viewportY + i)?.translateToString(true) ?? '');
    return out.join('\n');
  };
  return {
    proc, term, text, exited,
    resize: (c, r) => { term.resize(c, r); proc.resize(c, r); },
    key: (k) => proc.write(k),
  };
}

/** The foreground colour (palette index, -1 for the default) of the first cell of `word` on the line matching `row`. */
function colourOf(s: Screen, row: RegExp, word: string): number {
  const b = s.term.buffer.active;
  for (let y = 0; y < s.term.rows; y++) {
    const line = b.getLine(b.viewportY + y);
    const text = line?.translateToString(true) ?? '';
    if (!row.test(text)) continue;
    const cell = line!.getCell(text.indexOf(word, text.indexOf('demo')))!;
    return cell.isFgDefault() ? -1 : cell.getFgColor();
  }
  throw new Error(`no line matches ${row} on the screen:\n${s.text()}`);
}

const GREEN = 2;
const RED = 1;

const stateOf = async (lab: Lab, node: string) =>
  ((await controlRequest(`${lab.paths(node).home}/control.sock`, 'status', 'demo')) as { modules: { state: string; ready: boolean }[] }).modules[0]!;

/** Waits until the screen matches `re` (the emulator has parsed all output received so far when it is read). */
async function waitScreen(lab: Lab, s: Screen, what: string, re: RegExp, timeoutMs = 15_000): Promise<string> {
  return lab.waitFor(`dashboard: ${what}`, async () => {
    await new Promise<void>((r) => s.term.write('', r));
    const t = s.text();
    return re.test(t) ? t : false;
  }, timeoutMs, 50).catch((e: Error) => { throw new Error(`${e.message}\n--- screen:\n${s.text()}`); });
}

const show = (title: string, frame: string) => console.log(`\n  ── ${title}\n${frame.split('\n').map((l) => `  │${l}`).join('\n')}`);

let lab: Lab | null = null;
let screen: Screen | null = null;

test('the dashboard in a pty: renders, answers keys, re-fits, follows a failover, quits', async () => {
  const t0 = Date.now();
  try {
    lab = await createMirrorLab({ pulse: '200ms', timeout: '1s', replicate: true });
    const l = lab;
    await startPair(l);

    // what one poll costs: a status request to the daemon (the dashboard makes one every 400 ms)
    const polls = 20;
    const p0 = Date.now();
    for (let i = 0; i < polls; i++) await controlRequest(`${l.paths('node2').home}/control.sock`, 'status');
    console.log(`  status request (one dashboard poll): ${((Date.now() - p0) / polls).toFixed(1)} ms on average over ${polls}`);

    // off a terminal: one plain frame
    const once = await l.cli('node1', ['dashboard', '--once']);
    assert.match(once.stdout, /demo\s+PRIM\s+SECOND\s+198\.51\.100\.10 on node1/);
    assert.not.match(once.stdout, /\x1b\[/, 'no escape sequences off a terminal');

    // renders: node2 first (this node), node2 SECOND, node1 PRIM
    const opened = Date.now();
    const s = (screen = openDashboard(l, 'node2', 80, 24));
    let frame = await waitScreen(l, s, 'the pair', /▶ demo\s+SECOND\s+PRIM\s+198\.51\.100\.10 on node1/);
    console.log(`  first frame ${Date.now() - opened} ms after \`tandem lab exec node2 -- tandem dashboard\` was started`);
    assert.match(frame, /heartbeats: default up .* replication up/);
    assert.match(frame, /q quit/);
    assert.is(colourOf(s, /▶ demo/, 'SECOND'), GREEN, 'a ready SECOND is green');
    assert.is(colourOf(s, /▶ demo/, 'PRIM'), GREEN, 'a ready PRIM is green');
    show('80×24, node1 PRIM / node2 SECOND', frame);

    // re-fits on resize, both ways
    s.resize(100, 30);
    frame = await waitScreen(l, s, 'resized to 100×30', new RegExp(`^${'─'.repeat(100)}$`, 'm'));
    assert.ok(frame.split('\n').every((x) => x.length <= 100));
    assert.match(frame, /▶ demo\s+SECOND\s+PRIM/);
    s.resize(60, 16);
    frame = await waitScreen(l, s, 'resized to 60×16', new RegExp(`^${'─'.repeat(60)}$`, 'm'));
    assert.not.match(frame, new RegExp('─'.repeat(61)));
    assert.match(frame, /▶ demo\s+SECOND\s+PRIM/);
    assert.match(frame, /q quit/);
    show('after resize to 60×16', frame);
    s.resize(80, 24);
    await waitScreen(l, s, 'back to 80×24', new RegExp(`^${'─'.repeat(80)}$`, 'm'));

    // a key: t asks what a stop does here, y stops node2's module; node1 goes on ALONE
    s.key('t');
    frame = await waitScreen(l, s, 'the stop confirmation', /stop demo on node2 \(SECOND\): node2 stops taking node1's data; node1 goes on\s+ALONE — y\/n/);
    assert.is((await stateOf(l, 'node2')).state, 'SECOND', 'nothing happens before y');
    s.key('y');
    frame = await waitScreen(l, s, 'node2 STOP, node1 ALONE', /▶ demo\s+STOP\s+ALONE\s/);
    assert.is(colourOf(s, /▶ demo/, 'STOP'), RED, 'STOP is red');
    assert.is((await stateOf(l, 'node2')).state, 'STOP');
    assert.match(frame, /demo node2: SECOND… → STOP|demo node2: SECOND → STOP/);
    show('after t, y: node2 stopped', frame);
    // while node2 is stopped node1 writes 300 MiB into the replicated directory: node2's start resyncs them (about
    // 2.5 s at the 125 MB/s measured here, about 6 polls), shown as a progress bar with bytes, rate and ETA; the
    // test waits for a frame between 10 % and 99 %
    await l.exec('node1', ['dd', 'if=/dev/urandom', 'of=/srv/demo/data/blob', 'bs=1M', 'count=300', 'conv=fsync'], { timeoutMs: 120_000 });
    s.key('r');
    await waitScreen(l, s, 'the start confirmation', /start demo on node2 \(now STOP\)/);
    s.key('y');
    frame = await waitScreen(l, s, 'the resync progress bar', /resync \[█+░*\]\s+[1-9]\d% [\d.]+ MiB\/300\.0 MiB [\d.]+ [KM]iB\/s ETA \d+ s/, 30_000);
    assert.match(frame, /▶ demo\s+SECOND…\s+ALONE/);
    show('after r, y: node2 resyncs 300 MiB from node1', frame);
    await waitScreen(l, s, 'node2 SECOND again, node1 PRIM', /▶ demo\s+SECOND\s+PRIM\s/, 60_000);

    // off a terminal: a frame every --interval, with the events since the last one; a reader that goes away ends it
    const [file, ...args] = l.hostArgv('node1', [...l.spec.cliCommand, 'dashboard', '--interval', '200ms']);
    const plain = execa(file!, args, { env: { ...l.nodeEnv('node1'), FORCE_COLOR: '0' }, reject: false, stdin: 'ignore' });
    let out = '';
    plain.stdout!.on('data', (d) => { out += d; });
    try {
      await l.waitFor('two plain frames', async () => (out.match(/^tandem dashboard · node node1/gm) ?? []).length >= 2, 10_000, 50);
    } finally {
      plain.kill('SIGKILL');
      await plain;
    }
    assert.match(out, /demo\s+PRIM\s+SECOND/);
    assert.not.match(out, /\x1b\[/);
    const piped = await l.exec('node1', ['sh', '-c', `${l.spec.cliCommand.join(' ')} dashboard --interval 100ms | head -n 2`], { reject: false });
    assert.is(piped.code, 0, piped.stderr);
    assert.is(piped.stderr, '');
    assert.match(piped.stdout, /^tandem dashboard · node node1/);

    // follows a failover: node1 (PRIM) loses power; node2 shows itself ALONE and node1 unreachable
    const off = Date.now();
    await l.poweroff('node1');
    frame = await waitScreen(l, s, 'node2 ALONE after the power-off of node1', /▶ demo\s+ALONE\s+unreachable\s+198\.51\.100\.10 on node2/);
    assert.is(colourOf(s, /▶ demo/, 'unreachable'), RED, 'an unreachable peer is red');
    assert.is(colourOf(s, /▶ demo/, 'ALONE'), GREEN, 'a ready ALONE is green');
    const seenMs = Date.now() - off;
    assert.match(frame, /demo node1: PRIM → unreachable/);
    assert.match(frame, /heartbeats: default down/);
    show(`failover: node1 powered off, node2 ALONE (on screen ${seenMs} ms after the power-off; heartbeat timeout 1s)`, frame);

    // q quits with exit code 0
    assert.is(s.term.buffer.active.type, 'alternate', 'full screen on the alternate screen');
    s.key('q');
    assert.is(await s.exited, 0);
    await new Promise<void>((r) => s.term.write('', r));
    assert.is(s.term.buffer.active.type, 'normal', 'q gives the main screen back');
    screen = null;

    // SIGTERM (to `tandem lab exec`, which passes it on) ends it as q does: the main screen back, exit 128 + 15
    const t = (screen = openDashboard(l, 'node2', 80, 24));
    await waitScreen(l, t, 'a second dashboard', /▶ demo\s+ALONE\s+unreachable/);
    t.proc.kill('SIGTERM');
    assert.is(await t.exited, 143);
    await new Promise<void>((r) => t.term.write('', r));
    assert.is(t.term.buffer.active.type, 'normal', 'SIGTERM gives the main screen back');
    screen = null;
    // `tandem lab exec` itself: the command's exit code, and what to do for a powered-off or unknown host
    const labExec = (args: string[]) => execa(process.execPath, [path.join(repoRoot(), 'bin', 'tandem'), 'lab', 'exec', '--lab', l.prefix, ...args],
      { reject: false, env: { FORCE_COLOR: '0' } });
    assert.is((await labExec(['node2', '--', 'sh', '-c', 'exit 3'])).exitCode, 3);
    assert.is((await labExec(['node2', '--', 'sh', '-c', 'kill -TERM $$'])).exitCode, 143, 'killed by a signal: 128 + its number');
    // a SIGTERM for `lab exec` reaches the command (here without a terminal: SIGINT too)
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const running = labExec(['node2', '--', 'sh', '-c', 'echo $$; exec sleep 60']);
      const pid = await new Promise<number>((resolve) => running.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
      running.kill(sig);
      assert.is((await running).exitCode, 128 + os.constants.signals[sig], sig);
      assert.throws(() => process.kill(pid, 0), /ESRCH/, `the command got ${sig} too`);
    }
    const offHost = await labExec(['node1', '--', 'tandem', 'status']);
    assert.is(offHost.exitCode, 10, offHost.stderr);
    assert.match(offHost.stderr, /host node1 is powered off\.\n.*boot it first: `tandem lab boot node1`/);
    const noHost = await labExec(['node9', '--', 'true']);
    assert.is(noHost.exitCode, 10, noHost.stderr);
    assert.match(noHost.stderr, /has no host node9\.\n.*its hosts: node1, node2, client/);
    console.log(`  lab test took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    if (screen) {
      const pid = screen.proc.pid;
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    await lab?.down();
  }
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ExternalError } from '../../../src/errors.js';
import type { RunFn, RunResult } from '../../../src/platform/exec.js';
import { FakeWitness } from '../../../src/platform/witness/fake.js';
import { LinuxWitness } from '../../../src/platform/witness/linux.js';
import { gate } from '../gate.js';

const A = '192.0.2.1';
const B = '192.0.2.2';
const C = '192.0.2.3';

test('FakeWitness: true when any listed witness answers; records calls', async () => {
  const w = new FakeWitness([B]);
  assert.is(await w.reachable([A, B], 500), true);
  assert.is(await w.reachable([A], 500), false);
  w.set(A, true);
  w.set(B, false);
  assert.is(await w.reachable([A], 200), true);
  assert.is(await w.reachable([B], 200), false);
  assert.is(await w.reachable([], 200), false);
  assert.equal(w.calls[0], { addrs: [A, B], timeoutMs: 500 });
  assert.is(w.calls.length, 5);
});

/** ping answers per address: an exit code after a delay, or a rejection */
function fakePing(answers: Record<string, { code: number; after: number; stderr?: string } | Error>) {
  const calls: string[] = [];
  const exec: RunFn = (cmd, args) => {
    calls.push([cmd, ...args].join(' '));
    const a = answers[args[args.length - 1]!]!;
    if (a instanceof Error) return Promise.reject(a);
    return new Promise<RunResult>((res) => setTimeout(() => res({ stdout: '', stderr: a.stderr ?? '', code: a.code }), a.after));
  };
  return { exec, calls };
}

test('LinuxWitness pings every witness at once and answers as soon as one replies', async () => {
  // the silent witnesses' pings end only when the gate opens: after the answer, or after a 20 s fallback so that an
  // answer that waited for them comes with the gate open instead of hanging
  const silent = gate();
  const fallback = setTimeout(() => silent.open(), 20_000);
  const calls: string[] = [];
  const exec: RunFn = async (cmd, args) => {
    calls.push([cmd, ...args].join(' '));
    if (args[args.length - 1] !== B) await silent.pass();
    return { stdout: '', stderr: '', code: args[args.length - 1] === B ? 0 : 1 };
  };
  const w = new LinuxWitness({ log: () => {}, exec, cmdPrefix: ['ip', 'netns', 'exec', 'tvt-x'] });
  try {
    assert.is(await w.reachable([A, B, C], 500), true);
    assert.not.ok(silent.isOpen, 'did not wait for the silent witnesses');
    assert.equal(calls, [A, B, C].map((x) => `ip netns exec tvt-x ping -n -q -c 1 -W 0.500 ${x}`));
  } finally {
    clearTimeout(fallback);
    silent.open();
  }
});

test('LinuxWitness: none answers → false; errors (exit 2) are logged and count as silence', async () => {
  const { exec } = fakePing({ [A]: { code: 1, after: 5 }, [B]: { code: 2, after: 5, stderr: 'ping: connect: Network is unreachable\n' } });
  const logs: string[] = [];
  const w = new LinuxWitness({ log: (m) => logs.push(m), exec });
  assert.is(await w.reachable([A, B], 100), false);
  assert.equal(logs, [`witness ${B}: ping exited 2: ping: connect: Network is unreachable`]);
});

test('LinuxWitness: empty list → false without running anything', async () => {
  const { exec, calls } = fakePing({});
  assert.is(await new LinuxWitness({ log: () => {}, exec }).reachable([], 100), false);
  assert.equal(calls, []);
});

test('LinuxWitness: ping missing → ExternalError', async () => {
  const err = new ExternalError('ping', null, '', 'command failed (spawn ping ENOENT): ping');
  const { exec } = fakePing({ [A]: err });
  try {
    await new LinuxWitness({ log: () => {}, exec }).reachable([A], 100);
    assert.unreachable('should throw');
  } catch (e) {
    assert.is(e, err);
  }
});

test.run();

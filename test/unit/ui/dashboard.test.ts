/**
 * The Ink component over a fake stdout/stdin (ink-testing-library): keys select a module, ask, run the action
 * through `act` and show its outcome. The real terminal (pty, resize) is tested in test/lab/dashboard.test.ts.
 */
import React from 'react';
import { render } from 'ink-testing-library';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UserError } from '../../../src/errors.js';
import { Dashboard } from '../../../src/ui/dashboard.js';
import { StatusStore } from '../../../src/ui/store.js';
import { waitFor } from '../wait-for.js';
import { farm, mirror, status } from './fixtures.js';

const DOWN = '\u001B[B';

function setup(act: (verb: string, module: string) => Promise<string>) {
  const store = new StatusStore(async () => status('node1', [mirror('node1', 'PRIM', 'node2', 'SECOND')], [farm('node1')]), () => new Date(2026, 11, 4, 12, 0, 0));
  const calls: string[] = [];
  const app = render(React.createElement(Dashboard, { store, act: (v, m) => { calls.push(`${v} ${m}`); return act(v, m); } }));
  const frame = () => app.lastFrame() ?? '';
  // keys count once Ink reads stdin (its listener is attached by an effect after the first render)
  const ready = () => waitFor(() => app.stdin.listenerCount('readable') > 0, 2000, 'Ink reading stdin');
  return { store, app, calls, frame, ready };
}

test('s asks with what a swap does, y runs it through act and shows its answer in the event log', async () => {
  const { store, app, calls, frame, ready } = setup(async () => 'swap requested: node1 stops, node2 becomes PRIM');
  try {
    await store.poll();
    await waitFor(() => /▶ demo\s+PRIM\s+SECOND/.test(frame()), 2000, 'the first frame');
    await ready();
    app.stdin.write('s');
    await waitFor(() => frame().includes('swap demo: node1 PRIM → SECOND, node2 becomes PRIM — y/n'), 2000, 'the confirmation');
    assert.equal(calls, [], 'nothing runs before y');
    app.stdin.write('y');
    await waitFor(() => frame().includes('swap demo: swap requested: node1 stops, node2 becomes PRIM'), 2000, 'the answer');
    assert.equal(calls, ['swap demo']);
    assert.match(store.snapshot.events.join('\n'), /asked: swap demo: node1 PRIM → SECOND, node2 becomes PRIM\n.*swap demo: swap requested/);
  } finally {
    app.unmount();
  }
});

test('n cancels; a refused action asks nothing; ↓ selects the farm and its keys', async () => {
  const { store, app, calls, frame, ready } = setup(async () => 'done');
  try {
    await store.poll();
    await waitFor(() => frame().includes('▶ demo'), 2000, 'the first frame');
    await ready();
    app.stdin.write('t');
    await waitFor(() => frame().includes('stop demo on node1 (PRIM)'), 2000, 'the stop confirmation');
    app.stdin.write('n');
    await waitFor(() => frame().includes('nothing done'), 2000, 'cancelled');
    app.stdin.write(DOWN);
    await waitFor(() => frame().includes('▶ farm-web') && frame().includes('farm-web (farm)'), 2000, 'the farm selected');
    app.stdin.write('p');
    await waitFor(() => frame().includes('prim is for mirror modules; farm-web is a farm module'), 2000, 'the refusal');
    app.stdin.write('y');
    assert.equal(calls, [], 'y after a refusal runs nothing');
  } finally {
    app.unmount();
  }
});

test('an action the daemon refuses shows its message and what to do', async () => {
  const { store, app, frame, ready } = setup(async () => { throw new UserError('swap needs node2 ready', 'wait for node2 to finish its resync'); });
  try {
    await store.poll();
    await waitFor(() => frame().includes('▶ demo'), 2000, 'the first frame');
    await ready();
    app.stdin.write('s');
    await waitFor(() => frame().includes('— y/n'), 2000, 'the confirmation');
    app.stdin.write('y');
    await waitFor(() => frame().includes('swap demo failed: swap needs node2 ready → wait for node2 to finish its resync'), 2000, 'the error');
  } finally {
    app.unmount();
  }
});

test.run();

/**
 * The Ink dashboard: renders `dashboardFrame` of the store's snapshot at the terminal's size; keys go through the
 * pure `onKey` (model.ts), and the action it asks for runs here through `act` (the same service as the CLI
 * command). No socket here: the store polls.
 */
import React, { useCallback, useEffect, useReducer, useRef, useState, useSyncExternalStore } from 'react';
import { Box, Text, render, useApp, useInput, useStdout } from 'ink';
import { dashboardFrame, entries, initialUi, onKey, type Colour, type Entry, type KeyPress, type Line, type UiState, type Verb } from './model.js';
import { clockOf, type Snapshot, type StatusStore } from './store.js';

const COLOURS: Record<Colour, string> = { red: 'red', orange: '#ff8c00', green: 'green', gray: 'gray', cyan: 'cyan' };

export interface DashboardProps {
  store: StatusStore;
  /** runs `verb` on `module` through this node's daemon; resolves to its message, rejects with the error */
  act: (verb: Verb, module: string) => Promise<string>;
}

function useSize(): { width: number; height: number } {
  const { stdout } = useStdout();
  const read = () => ({ width: stdout.columns || 80, height: stdout.rows || 24 });
  const [size, setSize] = useState(read);
  useEffect(() => {
    const on = () => setSize(read());
    stdout.on('resize', on);
    return () => void stdout.off('resize', on);
  }, [stdout]);
  return size;
}

function LineView({ line }: { line: Line }) {
  return (
    <Text wrap="truncate">
      {line.length === 0 ? ' ' : line.map((s, i) => (
        <Text key={i} color={s.colour ? COLOURS[s.colour] : undefined} bold={s.bold} dimColor={s.dim} inverse={s.inverse}>{s.text}</Text>
      ))}
    </Text>
  );
}

type UiEvent = { kind: 'key'; key: KeyPress; list: Entry[] } | { kind: 'done'; id: number; text: string; ok: boolean };

function reduce(s: UiState, e: UiEvent): UiState {
  if (e.kind === 'key') return onKey(s, e.key, e.list);
  return s.run?.id === e.id ? { ...s, message: { text: e.text, ok: e.ok } } : s;
}

export function Dashboard({ store, act }: DashboardProps) {
  const { exit } = useApp();
  const subscribe = useCallback((cb: () => void) => store.subscribe(cb), [store]);
  const snap: Snapshot = useSyncExternalStore(subscribe, () => store.snapshot);
  const [ui, dispatch] = useReducer(reduce, initialUi);
  const { width, height } = useSize();
  const list = entries(snap.status);
  const listRef = useRef(list);
  listRef.current = list;

  useInput(useCallback((input, key) => {
    dispatch({ kind: 'key', key: { input, up: key.upArrow, down: key.downArrow, escape: key.escape, ctrl: key.ctrl }, list: listRef.current });
  }, []));

  useEffect(() => { if (ui.quit) exit(); }, [ui.quit, exit]);

  const run = ui.run;
  useEffect(() => {
    if (!run) return;
    store.note(`asked: ${run.what}`);
    act(run.verb, run.module).then(
      (r) => { const text = `${run.verb} ${run.module}: ${r}`; store.note(text); dispatch({ kind: 'done', id: run.id, text, ok: true }); },
      (e: Error & { hint?: string }) => {
        const text = `${run.verb} ${run.module} failed: ${e.message}${e.hint ? ` → ${e.hint}` : ''}`;
        store.note(text);
        dispatch({ kind: 'done', id: run.id, text, ok: false });
      },
    );
  }, [run?.id]);

  // one line fewer than the terminal: a frame as tall as the screen makes Ink clear the whole screen on each render
  const lines = dashboardFrame({
    status: snap.status, error: snap.error, selected: Math.min(ui.selected, Math.max(0, list.length - 1)), width,
    height: Math.max(3, height - 1), events: snap.events, prompt: ui.prompt, message: ui.message, clock: clockOf(snap.at),
  });
  return (
    <Box flexDirection="column" width={width}>
      {lines.map((l, i) => <LineView key={i} line={l} />)}
    </Box>
  );
}

/** Signals that end the view the way q does: the terminal gets its main screen back before the process goes. */
const ENDING_SIGNALS = ['SIGTERM', 'SIGHUP'] as const;

/**
 * Runs the dashboard full-screen (the terminal's alternate screen, restored on exit) until q, SIGTERM or SIGHUP,
 * polling the store every `pollMs`. Returns the signal that ended it, or null for q.
 */
export async function runDashboard(store: StatusStore, act: DashboardProps['act'], pollMs: number): Promise<NodeJS.Signals | null> {
  await store.poll();
  store.start(pollMs);
  process.stdout.write('\x1b[?1049h\x1b[H');
  let ended: NodeJS.Signals | null = null;
  const app = render(<Dashboard store={store} act={act} />, { exitOnCtrlC: false });
  // with a listener of ours, Ink's signal-exit unmounts but does not re-raise the signal: the finally below runs
  const onSignal = (sig: NodeJS.Signals) => { ended = sig; app.unmount(); };
  for (const sig of ENDING_SIGNALS) process.on(sig, onSignal);
  try {
    await app.waitUntilExit();
  } finally {
    for (const sig of ENDING_SIGNALS) process.off(sig, onSignal);
    store.stop();
    process.stdout.write('\x1b[?1049l');
  }
  return ended;
}

import fs from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../errors.js';
import type { ModState, Persisted } from '../engine/mirror/types.js';
import { homePaths, type Home } from '../home.js';

/**
 * Durable per-module state (state/<module>.json). `save` returns only when the new content is on disk:
 * written to a temporary file, fsync'd, renamed over the old one, and the directory fsync'd.
 */
export async function saveState(file: string, p: Persisted): Promise<void> {
  await writeDurably(file, `${JSON.stringify(p, null, 2)}\n`);
}

export async function loadState(file: string): Promise<Persisted | null> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const p = JSON.parse(text) as Persisted;
    if (typeof p !== 'object' || !p || !('wanted' in p) || !('lastState' in p)) throw new Error('missing fields');
    return p;
  } catch (e) {
    throw new UserError(
      `state file ${file} is unreadable (${(e as Error).message}).`,
      `Move it aside and run \`tandem prim\` on the node with the good data (the node will then consider its data unknown).`,
    );
  }
}

/**
 * Where a module's driver keeps what outlives it: the engine's persisted state (durable before `save` resolves) and
 * the run marker (in the run dir, wiped at reboot: the state to reattach to after a daemon restart). Real: the files
 * of the node's home (`fileModuleStore`); the simulator keeps them in memory, on its simulated disks.
 */
export interface ModuleStore {
  load(): Promise<Persisted | null>;
  save(p: Persisted): Promise<void>;
  /** the run marker's text, or null when there is none */
  readMarker(): Promise<string | null>;
  /** records `state` (with this process's pid), or removes the marker (null) */
  writeMarker(state: ModState | null): Promise<void>;
}

export function fileModuleStore(home: Home, module: string): ModuleStore {
  const stateFile = homePaths.stateFile(home, module);
  const marker = homePaths.runMarker(home, module);
  return {
    load: () => loadState(stateFile),
    save: (p) => saveState(stateFile, p),
    readMarker: () => fs.readFile(marker, 'utf8').catch(() => null),
    async writeMarker(state) {
      if (state) {
        await fs.mkdir(home.runDir, { recursive: true });
        await fs.writeFile(`${marker}.tmp`, `${state} ${process.pid}\n`);
        await fs.rename(`${marker}.tmp`, marker);
      } else {
        await fs.rm(marker, { force: true });
      }
    },
  };
}

export async function writeDurably(file: string, content: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  const fh = await fs.open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
  const dir = await fs.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/**
 * The daemon's boot counter (state/boot), used to order heartbeats across restarts: strictly above the last one, and
 * at least the current unix time in seconds, so that a wiped state directory cannot make the peers drop this
 * node's heartbeats as replays.
 */
export async function nextBootCounter(file: string, nowSeconds = Math.floor(Date.now() / 1000)): Promise<number> {
  let last = 0;
  try {
    last = Number.parseInt(await fs.readFile(file, 'utf8'), 10) || 0;
  } catch {
    last = 0;
  }
  const n = Math.max(last + 1, nowSeconds) >>> 0;
  await writeDurably(file, `${n}\n`);
  return n;
}

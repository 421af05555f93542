import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { defaultLabDir, type LabSpec } from './spec.js';

/**
 * What a lab persists so that another process (`Lab.attach`, a CLI, `downAll`) can act on it.
 *
 * `<dir>/lab.json` holds the whole `LabState`; `/run/tandem-lab/<prefix>.json` is an index entry pointing at it.
 * Writes are atomic (temp file + rename) and made before the step they describe, so a crash mid-create still leaves
 * enough to tear down. Every `Lab` method re-reads the file first: one process at a time drives a lab.
 */
export interface LabState {
  version: 1;
  spec: LabSpec;
  createdAt: string;
  /** PID of the process that created the lab. */
  ownerPid: number;
  /** True when the lab created `spec.dir` (then teardown may delete it). */
  ownsDir: boolean;
  /** Namespace names created (or about to be), in creation order. */
  namespaces: string[];
  /** Host → PID of its holder process. */
  holders: Record<string, number>;
  /** Host → mount IDs in the holder's mount namespace once the base setup was done; others are dropped at poweroff. */
  baseMounts: Record<string, number[]>;
  /** Node → PID of the daemon last started by `spawnDaemon` (absent once powered off). */
  daemons: Record<string, number>;
  /** Hosts currently powered off. */
  poweredOff: string[];
  /** LAN → hosts whose bridge port is cut: taken off the bridge (the LAN fails; the host keeps its carrier). */
  cuts: Record<string, string[]>;
  /** LAN → hosts whose cable is unplugged: bridge port down (the host's interface loses carrier). */
  unplugged?: Record<string, string[]>;
  /** Node → private dir index → PID of its lossy disk server while the node is on (spec.lossyDisks). */
  lossyServers?: Record<string, Record<string, number>>;
  /** Directories the lab created on the real filesystem (mount points of private dirs), parents first. */
  createdDirs: string[];
  /** True once `create` has finished. */
  complete: boolean;
}

export const INDEX_DIR = '/run/tandem-lab';
/** Marker files for directories some lab created on the real filesystem: `<INDEX_DIR>/created/<path with / as %>`. */
const CREATED_DIR = path.join(INDEX_DIR, 'created');

export interface IndexEntry {
  prefix: string;
  dir: string;
  createdAt: string;
  ownerPid: number;
}

export function stateFile(dir: string): string {
  return path.join(dir, 'lab.json');
}

export function indexFile(prefix: string): string {
  return path.join(INDEX_DIR, `${prefix}.json`);
}

function writeAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

export function saveState(state: LabState): void {
  writeAtomic(stateFile(state.spec.dir), `${JSON.stringify(state, null, 2)}\n`);
  const entry: IndexEntry = { prefix: state.spec.prefix, dir: state.spec.dir, createdAt: state.createdAt, ownerPid: state.ownerPid };
  writeAtomic(indexFile(state.spec.prefix), `${JSON.stringify(entry)}\n`);
}

/** Reads a lab's state from its directory; throws UserError when there is none. */
export function loadStateFromDir(dir: string): LabState {
  let text: string;
  try {
    text = fs.readFileSync(stateFile(dir), 'utf8');
  } catch {
    throw new UserError(`no lab state at ${stateFile(dir)}`, 'The lab was torn down or never created; see listLabs() or `ip netns list`.');
  }
  const state = JSON.parse(text) as LabState;
  if (state.version !== 1) throw new UserError(`${stateFile(dir)} has version ${String(state.version)}`, 'Tear it down with the tandem version that created it.');
  return state;
}

export function readIndex(prefix: string): IndexEntry | undefined {
  try {
    return JSON.parse(fs.readFileSync(indexFile(prefix), 'utf8')) as IndexEntry;
  } catch {
    return undefined;
  }
}

/** Where the state of lab `prefix` lives: the index entry's dir, else the default lab dir. */
export function labDirOf(prefix: string): string {
  return readIndex(prefix)?.dir ?? defaultLabDir(prefix);
}

export function removeIndex(prefix: string): void {
  fs.rmSync(indexFile(prefix), { force: true });
}

/** Index entries of every recorded lab. */
export function listIndex(): IndexEntry[] {
  let names: string[];
  try {
    names = fs.readdirSync(INDEX_DIR).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const e = readIndex(n.slice(0, -'.json'.length));
    return e ? [e] : [];
  });
}

function markerOf(dir: string): string {
  return path.join(CREATED_DIR, dir.replaceAll('%', '%25').replaceAll('/', '%2F'));
}

/** Records that a lab created `dir` on the real filesystem (shared by all labs, so the last user can remove it). */
export function markCreatedDir(dir: string): void {
  writeAtomic(markerOf(dir), '');
}

export function isMarkedCreated(dir: string): boolean {
  return fs.existsSync(markerOf(dir));
}

export function unmarkCreatedDir(dir: string): void {
  fs.rmSync(markerOf(dir), { force: true });
}

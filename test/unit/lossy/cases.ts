// Shared by model.test.ts (in-memory store) and store-disk.test.ts (the real store on a temp dir): a node's file
// system calls by path on a LossyModel, a power loss, and the table of cases with what must survive.
import * as assert from 'uvu/assert';
import { LossyModel, type Inode } from '../../../src/lab/lossy/model.js';
import { PAGE } from '../../../src/lab/lossy/pages.js';
import type { DurableStore } from '../../../src/lab/lossy/store.js';

export const WHO = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };

/** A node's file system calls by path, on one model; `crash()` is the power loss. */
export class Disk<S extends DurableStore = DurableStore> {
  readonly store: S;
  model: LossyModel;
  clock = 1_000_000;
  private readonly open = new Map<string, Inode>();

  constructor(store: S, private readonly durable: (s: S) => Record<string, string>, o: { limit?: number } = {}) {
    this.store = store;
    this.model = new LossyModel({ store: this.store, nowUs: () => (this.clock += 1000), pendingLimitBytes: o.limit });
  }

  node(path: string): Inode {
    let n = this.model.root;
    for (const part of path.split('/').filter(Boolean)) n = this.model.lookup(n, part);
    return n;
  }

  private split(path: string): [Inode, string] {
    const i = path.lastIndexOf('/');
    return [this.node(i < 0 ? '' : path.slice(0, i)), path.slice(i + 1)];
  }

  create(path: string, content = '', perm = 0o644): this {
    const [dir, name] = this.split(path);
    const n = this.model.create(dir, name, perm, WHO);
    if (content) this.model.write(n, 0, Buffer.from(content, 'latin1'), false);
    return this;
  }
  mkdir(path: string): this {
    const [dir, name] = this.split(path);
    this.model.mkdir(dir, name, 0o755, WHO);
    return this;
  }
  symlink(path: string, target: string): this {
    const [dir, name] = this.split(path);
    this.model.symlink(dir, name, target, WHO);
    return this;
  }
  write(path: string, off: number, content: string): this {
    this.model.write(this.node(path), off, Buffer.from(content, 'latin1'), false);
    return this;
  }
  append(path: string, content: string): this {
    this.model.write(this.node(path), 0, Buffer.from(content, 'latin1'), true);
    return this;
  }
  truncate(path: string, size: number): this {
    this.model.setattr(this.node(path), { size });
    return this;
  }
  chmod(path: string, mode: number): this {
    this.model.setattr(this.node(path), { mode });
    return this;
  }
  utime(path: string, mtimeUs: number): this {
    this.model.setattr(this.node(path), { mtimeUs, atimeUs: mtimeUs });
    return this;
  }
  unlink(path: string): this {
    const [dir, name] = this.split(path);
    this.model.unlink(dir, name);
    return this;
  }
  rmdir(path: string): this {
    const [dir, name] = this.split(path);
    this.model.rmdir(dir, name);
    return this;
  }
  rename(from: string, to: string): this {
    const [a, an] = this.split(from);
    const [b, bn] = this.split(to);
    this.model.rename(a, an, b, bn, false);
    return this;
  }
  fsync(path: string): this {
    this.model.fsync(this.node(path), false);
    return this;
  }
  fdatasync(path: string): this {
    this.model.fsync(this.node(path), true);
    return this;
  }
  syncAll(): this {
    this.model.syncAll();
    return this;
  }
  /** open(2) and keep the handle (so an unlinked file stays alive) */
  hold(path: string): this {
    const n = this.node(path);
    this.model.open(n, false);
    this.open.set(path, n);
    return this;
  }
  /** the inode behind a held handle (reachable after its name is gone) */
  held(path: string): Inode {
    return this.open.get(path)!;
  }
  writeHeld(path: string, off: number, content: string): this {
    this.model.write(this.held(path), off, Buffer.from(content, 'latin1'), false);
    return this;
  }
  fsyncHeld(path: string, datasync = false): this {
    this.model.fsync(this.held(path), datasync);
    return this;
  }
  release(path: string): this {
    this.model.close(this.open.get(path)!);
    this.open.delete(path);
    return this;
  }

  /** What the node sees now: path → content ('/' for directories, '-> target' for symlinks). */
  view(): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (dir: Inode, rel: string) => {
      for (const name of [...this.model.entries(dir).keys()].sort()) {
        const n = this.model.entries(dir).get(name)!;
        const r = rel ? `${rel}/${name}` : name;
        if (n.kind === 'dir') {
          out[r] = '/';
          walk(n, r);
        } else if (n.kind === 'symlink') out[r] = `-> ${n.target}`;
        else {
          const b = Buffer.alloc(n.attrs.size);
          this.model.read(n, 0, b.length, b, 0);
          out[r] = b.toString('latin1');
        }
      }
    };
    walk(this.model.root, '');
    return out;
  }

  /** Power loss: the model is dropped; a new one boots from the store. Returns what the store holds. */
  crash(): Record<string, string> {
    this.model = new LossyModel({ store: this.store, nowUs: () => (this.clock += 1000) });
    this.open.clear();
    return this.durable(this.store);
  }

  /** what the store holds now */
  stored(): Record<string, string> {
    return this.durable(this.store);
  }

  /** creates `files` (path → content, '/' for a directory) and makes them durable */
  fill(files: Record<string, string>): this {
    for (const [p, c] of Object.entries(files)) (c === '/' ? this.mkdir(p) : this.create(p, c));
    this.syncAll();
    assert.equal(this.stored(), files, 'setup is durable');
    return this;
  }
}

export interface Case {
  name: string;
  before?: Record<string, string>;
  run: (d: Disk<any>) => void;
  /** what the node sees before the power loss (default: not checked) */
  sees?: Record<string, string>;
  survives: Record<string, string>;
}

export const cases: Case[] = [
  {
    name: 'write without sync is lost',
    before: { f: 'old' },
    run: (d) => d.write('f', 0, 'NEW').append('f', '+more'),
    sees: { f: 'NEW+more' },
    survives: { f: 'old' },
  },
  {
    name: 'fdatasync keeps data and size',
    before: { f: 'old' },
    run: (d) => d.write('f', 0, 'NEW').append('f', '+more').fdatasync('f'),
    survives: { f: 'NEW+more' },
  },
  {
    name: 'fsync keeps data and size',
    before: { f: 'old' },
    run: (d) => d.write('f', 0, 'NEW').fsync('f'),
    survives: { f: 'NEW' },
  },
  {
    name: 'an overwrite in place after fdatasync is lost, the synced bytes stay',
    before: { f: '' },
    run: (d) => d.write('f', 0, 'A'.repeat(PAGE * 2)).fdatasync('f').write('f', 0, 'B'.repeat(PAGE)).append('f', 'C'),
    sees: { f: 'B'.repeat(PAGE) + 'A'.repeat(PAGE) + 'C' },
    survives: { f: 'A'.repeat(PAGE * 2) },
  },
  {
    name: 'truncate without sync is lost; with fdatasync it is kept',
    before: { a: 'abcdef', b: 'abcdef' },
    run: (d) => d.truncate('a', 2).truncate('b', 2).fdatasync('b'),
    survives: { a: 'abcdef', b: 'ab' },
  },
  {
    name: 'create without a directory fsync is lost, even when the file was fsynced',
    before: { d: '/' },
    run: (d) => d.create('d/f', 'data').fsync('d/f').create('g', 'x').fsync('g'),
    sees: { d: '/', 'd/f': 'data', g: 'x' },
    survives: { d: '/' },
  },
  {
    name: 'create + fsync(dir) keeps the entry; its data only if the file was synced',
    run: (d) => d.create('synced', 'data').fsync('synced').create('unsynced', 'data').fsync(''),
    survives: { synced: 'data', unsynced: '' },
  },
  {
    name: 'a file fsynced after the directory sync keeps the data too',
    run: (d) => d.create('f', 'v1').fsync('').write('f', 0, 'v2').fdatasync('f'),
    survives: { f: 'v2' },
  },
  {
    name: 'unlink without a directory fsync is undone',
    before: { f: 'keep me' },
    run: (d) => d.unlink('f'),
    sees: {},
    survives: { f: 'keep me' },
  },
  {
    name: 'unlink + fsync(dir) is durable',
    before: { f: 'x', g: 'y' },
    run: (d) => d.unlink('f').fsync(''),
    survives: { g: 'y' },
  },
  {
    name: 'rename without a directory fsync is undone',
    before: { old: 'content' },
    run: (d) => d.rename('old', 'new'),
    sees: { new: 'content' },
    survives: { old: 'content' },
  },
  {
    name: 'write tmp, fsync tmp, rename over the target, fsync(dir): the new content under the old name',
    before: { conf: 'v1' },
    run: (d) => d.create('conf.tmp', 'v2').fsync('conf.tmp').rename('conf.tmp', 'conf').fsync(''),
    survives: { conf: 'v2' },
  },
  {
    name: 'rename over the target without fsync of the new file: the entry is durable, the data is not',
    before: { conf: 'v1' },
    run: (d) => d.create('conf.tmp', 'v2').rename('conf.tmp', 'conf').fsync(''),
    survives: { conf: '' },
  },
  {
    name: 'a rename between directories is atomic: a sync of either directory makes all of it durable',
    before: { a: '/', b: '/', 'a/f': 'x', 'b/f': 'replaced' },
    run: (d) => d.rename('a/f', 'b/f').fsync('a'),
    survives: { a: '/', b: '/', 'b/f': 'x' },
  },
  {
    name: 'the target directory alone is enough as well',
    before: { a: '/', b: '/', 'a/f': 'x' },
    run: (d) => d.rename('a/f', 'b/g').fdatasync('b'),
    survives: { a: '/', b: '/', 'b/g': 'x' },
  },
  {
    name: 'a sync covers the renames out of and into its directory only',
    before: { a: 'A', b: 'B', s: '/' },
    run: (d) => d.rename('b', 's/c').rename('a', 'b').fsync('s'),
    sees: { b: 'A', s: '/', 's/c': 'B' },
    survives: { a: 'A', s: '/', 's/c': 'B' },
  },
  {
    name: 'a rename onto a durable name whose file was renamed away carries that rename along (chain)',
    before: { b: 'B', s: '/', 's/a': 'A', t: '/' },
    run: (d) => d.rename('b', 't/b').rename('s/a', 'b').fsync('s'),
    survives: { b: 'A', s: '/', t: '/', 't/b': 'B' },
  },
  {
    name: 'mkdir + file + fsync(sub) without fsync(parent): the directory and its file are lost',
    run: (d) => d.mkdir('sub').create('sub/f', 'x').fsync('sub/f').fsync('sub'),
    sees: { sub: '/', 'sub/f': 'x' },
    survives: {},
  },
  {
    name: '... and a later fsync(parent) brings both back, with what was synced below',
    run: (d) => d.mkdir('sub').create('sub/f', 'x').fsync('sub/f').fsync('sub').create('sub/late', 'y').fsync(''),
    survives: { sub: '/', 'sub/f': 'x' },
  },
  {
    name: 'rmdir without fsync is undone; with fsync(parent) it is durable',
    before: { d: '/', e: '/' },
    run: (d) => d.rmdir('d').rmdir('e').fsync('').mkdir('e'),
    survives: {},
  },
  {
    name: 'unlinking the files of a directory and the directory, then fsync(parent): all gone',
    before: { d: '/', 'd/f': 'x', 'd/sub': '/', 'd/sub/g': 'y' },
    run: (d) => d.unlink('d/sub/g').rmdir('d/sub').unlink('d/f').rmdir('d').fsync(''),
    survives: {},
  },
  {
    name: 'moving a file out of a directory that is then removed: fsync of the target keeps the file',
    before: { d: '/', 'd/f': 'x', t: '/' },
    run: (d) => d.rename('d/f', 't/f').rmdir('d').fsync('t'),
    survives: { d: '/', t: '/', 't/f': 'x' },
  },
  {
    name: 'a directory renamed into a subdirectory of its old place (the path is renamed first)',
    before: { A: '/', 'A/B': '/', 'A/B/f': 'x' },
    run: (d) => d.rename('A/B', 'B').rename('A', 'B/A').fsync('B'),
    sees: { B: '/', 'B/A': '/', 'B/f': 'x' },
    survives: { B: '/', 'B/A': '/', 'B/f': 'x' },
  },
  {
    name: 'symlinks follow the directory rules',
    run: (d) => d.symlink('kept', 'target').fsync('').symlink('lost', 'other'),
    survives: { kept: '-> target' },
  },
  {
    name: 'an unlinked open file: writes and fsync through the handle bring no name back',
    before: { f: 'x' },
    run: (d) => d.hold('f').unlink('f').fsync('').writeHeld('f', 0, 'y').fsyncHeld('f'),
    sees: {},
    survives: {},
  },
  {
    name: 'syncAll makes everything durable',
    before: { a: 'A', d: '/' },
    run: (d) => d.write('a', 0, 'AA').mkdir('d/e').create('d/e/f', 'F').rename('a', 'd/a').syncAll(),
    survives: { d: '/', 'd/a': 'AA', 'd/e': '/', 'd/e/f': 'F' },
  },
];


import { BugError } from '../../errors.js';
import { FUSE_ROOT_ID } from './protocol.js';

/**
 * The kernel's view of the tree: one Inode per nodeid the kernel holds a reference to.
 *
 * Contract:
 * - A nodeid is handed to the kernel with a lookup count (LOOKUP, CREATE, MKNOD, MKDIR, SYMLINK, each READDIRPLUS
 *   entry); FORGET/BATCH_FORGET give counts back. An inode leaves the table when its count is 0 and no file handle
 *   refers to it. Nodeids are never reused within a mount, so every inode's generation is 0 (nodeid:generation is
 *   unique for the connection's lifetime, as fuse.h requires).
 * - An inode is located by its parent inode and name, so renaming a directory moves every descendant at once, and
 *   open files keep working after their file (or any ancestor) is renamed.
 * - An inode whose name was unlinked, or replaced by a rename, is an orphan: it has no path, keeps its open handles
 *   (they hold backing fds), and is answered from those fds until the kernel forgets it.
 * - `ino` is the backing st_ino seen at lookup, `type` its file type (st_mode & S_IFMT, fixed for an inode's life):
 *   if a lookup finds a different file under the same name (another inode number or type: the backing directory
 *   changed behind the mount), the old inode is orphaned and a new nodeid is made.
 */
export interface Inode {
  readonly nodeid: number;
  readonly generation: number;
  ino: number;
  /** st_mode & S_IFMT of the backing file; 0 while unknown */
  type: number;
  parent: Inode | null;
  name: string;
  nlookup: number;
  /** open backing fds of this inode (files) */
  readonly fds: Set<number>;
  orphan: boolean;
  readonly children: Map<string, Inode>;
}

export class InodeTable {
  readonly root: Inode;
  private readonly byId = new Map<number, Inode>();
  private nextId = FUSE_ROOT_ID + 1;

  constructor(rootIno: number) {
    this.root = this.make(FUSE_ROOT_ID, rootIno, null, '', 0o040000);
    this.root.nlookup = 1; // the root is never forgotten
  }

  get size(): number {
    return this.byId.size;
  }

  get(nodeid: number): Inode | undefined {
    return this.byId.get(nodeid);
  }

  child(parent: Inode, name: string): Inode | undefined {
    return parent.children.get(name);
  }

  /**
   * A reply is about to hand (parent, name) → file `ino` of file type `type` (S_IFMT bits; 0 = unknown) to the kernel:
   * find or make its inode and count one lookup.
   */
  lookup(parent: Inode, name: string, ino: number, type = 0): Inode {
    let node = parent.children.get(name);
    if (node && (node.ino !== ino || (type !== 0 && node.type !== 0 && node.type !== type))) {
      this.detach(node);
      node = undefined;
    }
    if (!node) node = this.make(this.nextId++, ino, parent, name, type);
    else if (node.type === 0) node.type = type;
    node.nlookup++;
    return node;
  }

  /** FORGET: the kernel drops `n` references. */
  forget(nodeid: number, n: number): void {
    if (nodeid === FUSE_ROOT_ID) return;
    const node = this.byId.get(nodeid);
    if (!node) return;
    node.nlookup = Math.max(0, node.nlookup - n);
    this.maybeFree(node);
  }

  /** The name (parent, name) is gone from the backing store (unlink, rmdir, or overwritten by a rename). */
  removeName(parent: Inode, name: string): void {
    const node = parent.children.get(name);
    if (node) this.detach(node);
  }

  /** rename: `node` now lives at (newParent, newName); whatever the kernel knew there is orphaned. */
  move(node: Inode, newParent: Inode, newName: string): void {
    if (node.parent === newParent && node.name === newName) return;
    this.removeName(newParent, newName);
    node.parent?.children.delete(node.name);
    node.parent = newParent;
    node.name = newName;
    newParent.children.set(newName, node);
  }

  /** Path relative to the mount root ('' for the root), or null for an orphan or a descendant of one. */
  pathOf(node: Inode): string | null {
    if (node === this.root) return '';
    const parts: string[] = [];
    for (let n: Inode | null = node; n !== this.root; n = n.parent) {
      if (!n || n.orphan) return null;
      parts.push(n.name);
    }
    return parts.reverse().join('/');
  }

  /** Path of `name` inside directory `parent`. */
  childPath(parent: Inode, name: string): string | null {
    const p = this.pathOf(parent);
    if (p === null) return null;
    return p === '' ? name : `${p}/${name}`;
  }

  addFd(node: Inode, fd: number): void {
    node.fds.add(fd);
  }

  removeFd(node: Inode, fd: number): void {
    node.fds.delete(fd);
    this.maybeFree(node);
  }

  private make(nodeid: number, ino: number, parent: Inode | null, name: string, type: number): Inode {
    const node: Inode = { nodeid, generation: 0, ino, type, parent, name, nlookup: 0, fds: new Set(), orphan: false, children: new Map() };
    if (this.byId.has(nodeid)) throw new BugError(`nodeid ${nodeid} reused`);
    this.byId.set(nodeid, node);
    parent?.children.set(name, node);
    return node;
  }

  private detach(node: Inode): void {
    if (node.parent && node.parent.children.get(node.name) === node) node.parent.children.delete(node.name);
    node.orphan = true;
    this.maybeFree(node);
  }

  private maybeFree(node: Inode): void {
    if (node.nlookup > 0 || node.fds.size > 0 || node === this.root) return;
    this.byId.delete(node.nodeid);
    if (node.parent && node.parent.children.get(node.name) === node) node.parent.children.delete(node.name);
  }
}

import { ExternalError } from '../../errors.js';
import { formatCommand, type RunOptions, type RunResult } from '../../platform/exec.js';
import type { MountPassthroughOptions } from '../fuse/index.js';
import { formatMountinfo, identityOf, stackAt, underlyingMount, type MountEntry } from './mountinfo.js';
import type { ProcessView, ProcSource } from './holders.js';
import type { LayoutFuseMount, LayoutSystem } from './system.js';

/**
 * A process table for the holder check: no process but this one unless a test adds some (`add`), one namespace
 * (`mnt:[1]`) unless a process names another, whose mountinfo `namespaces` gives.
 */
export class FakeProcSource implements ProcSource {
  readonly list: ProcessView[] = [];
  readonly namespaces = new Map<string, string>();
  kernel: { what: string; file: string }[] = [];

  add(p: Partial<ProcessView> & { pid: number }): void {
    this.list.push({ command: 'proc', cwd: '/', root: '/', fds: [], maps: [], mntNs: 'mnt:[1]', ...p });
  }

  async self(): Promise<{ pid: number; mntNs: string | null }> {
    return { pid: process.pid, mntNs: 'mnt:[1]' };
  }

  async processes(): Promise<ProcessView[]> {
    return [...this.list];
  }

  async mountinfo(pid: number): Promise<string | null> {
    const ns = this.list.find((p) => p.pid === pid)?.mntNs;
    return ns ? this.namespaces.get(ns) ?? null : null;
  }

  async kernelFiles(): Promise<{ what: string; file: string }[]> {
    return this.kernel;
  }
}

/**
 * An in-memory mount table that understands the commands the layout runs (`mount --bind`, `--make-private`,
 * `-o remount,bind,ro`, `umount [-l]`) and fakes the FUSE passthrough. The file system itself stays real: tests give
 * it real (temporary) directories, which it never touches.
 *
 * - `commands` lists every command and FUSE call in order, as a user would type it (`fuse-mount <dir>`, `fuse-abort N`).
 * - `failOn(substring)` makes the next command containing it fail (exit 32, or a thrown error for `fuse-mount`).
 * - `fuseStays(dir)`: that FUSE mount's unmount() "succeeds" without removing it (a broken unmount).
 */
export class FakeMountSystem implements LayoutSystem {
  entries: MountEntry[] = [
    { id: 1, parentId: 0, dev: '254:0', root: '/', mountPoint: '/', options: ['rw', 'relatime'], optional: ['shared:1'], fstype: 'ext4', source: '/dev/vda', superOptions: ['rw'] },
  ];
  readonly commands: string[] = [];
  readonly proc = new FakeProcSource();
  private nextId = 100;
  private nextFuse = 40;
  private failures: string[] = [];
  private sticky = new Set<string>();

  failOn(substring: string): void {
    this.failures.push(substring);
  }

  fuseStays(dir: string): void {
    this.sticky.add(dir);
  }

  /** mounts something that is not tandem's */
  addMount(mountPoint: string, fstype: string, source: string, dev = '8:17'): MountEntry {
    return this.add({ dev, root: '/', mountPoint, options: ['rw'], optional: [], fstype, source, superOptions: ['rw'] });
  }

  readonly run = async (cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> => {
    const line = formatCommand(cmd, args);
    this.commands.push(line);
    const fail = (stderr: string): RunResult => {
      if (opts.reject === false) return { stdout: '', stderr, code: 32 };
      throw new ExternalError(line, 32, stderr);
    };
    if (this.shouldFail(line)) return fail('injected failure');
    const a = args.filter((x) => x !== '--no-canonicalize');
    if (cmd === 'mount' && a[0] === '--bind' && a.length === 3) {
      const id = this.identity(a[1]!);
      if (!id) return fail(`mount: ${a[1]}: special device does not exist.`);
      this.add({ ...id, mountPoint: a[2]!, options: ['rw', 'relatime'], optional: ['shared:1'], superOptions: ['rw'] });
    } else if (cmd === 'mount' && a[0] === '--make-private' && a.length === 2) {
      const top = stackAt(this.entries, a[1]!).at(-1);
      if (!top) return fail(`mount: ${a[1]}: not mount point`);
      top.optional = [];
    } else if (cmd === 'mount' && a[0] === '-o' && a[1] === 'remount,bind,ro' && a.length === 3) {
      const top = stackAt(this.entries, a[2]!).at(-1);
      if (!top) return fail(`mount: ${a[2]}: mount point not mounted or bad option.`);
      top.options = ['ro', ...top.options.filter((o) => o !== 'rw')];
    } else if (cmd === 'umount') {
      const top = stackAt(this.entries, a.at(-1)!).at(-1);
      if (!top) return fail(`umount: ${a.at(-1)}: not mounted.`);
      this.entries = this.entries.filter((e) => e !== top);
    } else {
      return fail(`fake: unsupported command ${line}`);
    }
    return { stdout: '', stderr: '', code: 0 };
  };

  readonly readMountinfo = async (): Promise<string> => formatMountinfo(this.entries);

  readonly mountPassthrough = async (o: MountPassthroughOptions): Promise<LayoutFuseMount> => {
    this.commands.push(`fuse-mount ${o.mountpoint} backing ${o.backing}`);
    if (this.shouldFail(`fuse-mount ${o.mountpoint}`)) throw new ExternalError('mount -i -t fuse', 32, 'injected failure');
    const minor = this.nextFuse++;
    const entry = this.add({ dev: `0:${minor}`, root: '/', mountPoint: o.mountpoint, options: ['rw', 'nosuid', 'nodev', 'relatime'], optional: ['shared:2'], fstype: 'fuse.tandem', source: 'tandemfs', superOptions: ['rw'] });
    return {
      connection: minor,
      unmount: async () => {
        this.commands.push(`fuse-unmount ${o.mountpoint}`);
        if (!this.sticky.has(o.mountpoint)) this.entries = this.entries.filter((e) => e !== entry);
      },
    };
  };

  readonly abortFuseConnection = async (connection: number): Promise<void> => {
    this.commands.push(`fuse-abort ${connection}`);
  };

  private shouldFail(line: string): boolean {
    const i = this.failures.findIndex((f) => line.includes(f));
    if (i < 0) return false;
    this.failures.splice(i, 1);
    return true;
  }

  private identity(src: string): Pick<MountEntry, 'dev' | 'root' | 'fstype' | 'source'> | null {
    const top = stackAt(this.entries, src).at(-1);
    if (top) return { dev: top.dev, root: top.root, fstype: top.fstype, source: top.source };
    const base = underlyingMount(this.entries, src);
    const id = identityOf(this.entries, src);
    return base && id ? { ...id, fstype: base.fstype, source: base.source } : null;
  }

  private add(e: Omit<MountEntry, 'id' | 'parentId'>): MountEntry {
    const parent = stackAt(this.entries, e.mountPoint).at(-1) ?? underlyingMount(this.entries, e.mountPoint);
    const entry = { id: this.nextId++, parentId: parent?.id ?? 1, ...e };
    this.entries.push(entry);
    return entry;
  }
}

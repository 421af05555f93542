// A child process of the conformance suite (test/lab/conformance.test.ts): executes the steps it reads on stdin, one
// JSON object per line ({id, op, args}), and answers each with one line ({id, ok, value} or {id, ok: false, code}).
// It runs as root or as a test user (started through setpriv), with umask 022, and resolves relative paths from its
// current directory (the `chdir` step moves it). It is a separate process, so its synchronous file calls on the FUSE
// mount are safe: the test process that serves the mount never makes them.
// Steps that Node has no call for (mknod, renameat2, xattrs, utimensat with UTIME_OMIT, aligned O_DIRECT) go through
// /usr/bin/python3 (ctypes / os); without it they answer `skipped` on every target alike.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs, { constants as C } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { getSystemErrorMap } from 'node:util';

export type Value = null | boolean | number | string | Value[] | { [k: string]: Value };
export interface Request {
  id: number;
  op: string;
  args: Value[];
}
export type Answer = { id: number; ok: true; value: Value } | { id: number; ok: false; code: string };

export const PYTHON = '/usr/bin/python3';

const FLAGS: Record<string, number> = {
  RDONLY: C.O_RDONLY, WRONLY: C.O_WRONLY, RDWR: C.O_RDWR, CREAT: C.O_CREAT, EXCL: C.O_EXCL, TRUNC: C.O_TRUNC,
  APPEND: C.O_APPEND, DIRECTORY: C.O_DIRECTORY, NOFOLLOW: C.O_NOFOLLOW, NONBLOCK: C.O_NONBLOCK, SYNC: C.O_SYNC,
  DSYNC: C.O_DSYNC, DIRECT: C.O_DIRECT ?? 0o40000, NOATIME: C.O_NOATIME ?? 0o1000000,
  // __O_TMPFILE | O_DIRECTORY (Node has no constant for it)
  TMPFILE: 0o20200000,
};

function flagsOf(names: Value): number {
  let f = 0;
  for (const n of names as string[]) {
    const v = FLAGS[n];
    if (v === undefined) throw new Error(`unknown open flag ${n}`);
    f |= v;
  }
  return f;
}

export function typeOf(mode: number): string {
  switch (mode & 0o170000) {
    case 0o100000: return 'file';
    case 0o040000: return 'dir';
    case 0o120000: return 'symlink';
    case 0o010000: return 'fifo';
    case 0o140000: return 'socket';
    case 0o020000: return 'char';
    case 0o060000: return 'block';
    default: return `type-${(mode & 0o170000).toString(8)}`;
  }
}

/** The attributes the suite compares: no inode numbers, devices or times (times only where a step asks for them). */
function attrs(st: fs.Stats): { [k: string]: Value } {
  const type = typeOf(st.mode);
  const a: { [k: string]: Value } = { type, mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid, nlink: st.nlink };
  if (type === 'file' || type === 'symlink') a.size = st.size;
  if (type === 'char' || type === 'block') a.rdev = st.rdev;
  return a;
}

/** [atime, mtime] in nanoseconds since the epoch (decimal strings). */
function timesOf(p: string): Value {
  const st = fs.lstatSync(p, { bigint: true });
  return [String(st.atimeNs), String(st.mtimeNs)];
}

/** Every entry under `dir` (not following symlinks), sorted: attributes, symlink targets, file contents' hashes. */
function tree(dir: string): Value {
  const out: Value[] = [];
  const walk = (rel: string) => {
    const abs = rel === '' ? dir : path.join(dir, rel);
    let names: string[];
    try {
      names = fs.readdirSync(abs).sort();
    } catch (e) {
      out.push({ path: rel || '.', error: (e as NodeJS.ErrnoException).code ?? 'error' });
      return;
    }
    for (const n of names) {
      const r = rel === '' ? n : `${rel}/${n}`;
      const p = path.join(dir, r);
      const st = fs.lstatSync(p);
      const e: { [k: string]: Value } = { path: r.length > 80 ? `${r.slice(0, 40)}…${r.slice(-30)}(${Buffer.byteLength(r)} bytes)` : r, ...attrs(st) };
      if (st.isSymbolicLink()) e.target = short(fs.readlinkSync(p));
      if (st.isFile()) e.sha = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex').slice(0, 16);
      out.push(e);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

function short(s: string): string {
  return s.length > 80 ? `${s.slice(0, 40)}…(${Buffer.byteLength(s)} bytes)` : s;
}

/** The errno name whose message a tool printed ("mkfifo: …: Permission denied" → EACCES), else the exit status. */
function toolResult(r: ReturnType<typeof spawnSync>): Value {
  if (r.status === 0) return String(r.stdout ?? '').trim() ? `ok ${String(r.stdout).trim()}` : 'ok';
  const text = String(r.stderr ?? '').toLowerCase();
  let best: { name: string; len: number } | null = null;
  for (const [, [name, message]] of getSystemErrorMap()) {
    const m = message.toLowerCase();
    if (m.length > 6 && text.includes(m) && (!best || m.length > best.len)) best = { name, len: m.length };
  }
  return best ? `error ${best.name}` : `exit ${r.status}`;
}

const PY = String.raw`
import ctypes, errno, json, os, sys, mmap
libc = ctypes.CDLL(None, use_errno=True)
a = json.loads(sys.argv[1])
op = a[0]
def err(e):
    print(json.dumps({"code": errno.errorcode.get(e, str(e))})); sys.exit(0)
def check(r):
    if r != 0: err(ctypes.get_errno())
try:
    if op == "mknod":
        kinds = {"fifo": 0o010000, "char": 0o020000, "block": 0o060000, "socket": 0o140000, "file": 0o100000}
        os.mknod(a[1], kinds[a[2]] | a[3], os.makedev(a[4], a[5]))
        v = "ok"
    elif op == "renameat2":
        libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        check(libc.renameat2(-100, a[1].encode(), -100, a[2].encode(), a[3]))
        v = "ok"
    elif op == "setxattr":
        os.setxattr(a[1], a[2], a[3].encode(), 0, follow_symlinks=False); v = "ok"
    elif op == "getxattr":
        v = os.getxattr(a[1], a[2], follow_symlinks=False).decode()
    elif op == "listxattr":
        v = sorted(x for x in os.listxattr(a[1], follow_symlinks=False) if x.startswith("user."))
    elif op == "removexattr":
        os.removexattr(a[1], a[2], follow_symlinks=False); v = "ok"
    elif op == "utimensat":
        class TS(ctypes.Structure): _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
        def ts(x):
            if x == "omit": return TS(0, (1 << 30) - 2)
            if x == "now": return TS(0, (1 << 30) - 1)
            return TS(x[0], x[1])
        arr = (TS * 2)(ts(a[2]), ts(a[3]))
        check(libc.utimensat(-100, a[1].encode(), arr, 0x100 if a[4] else 0))
        v = "ok"
    elif op == "odirect_write":
        fd = os.open(a[1], os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
        buf = mmap.mmap(-1, a[2]); buf.write(b"d" * a[2])
        n = os.pwritev(fd, [buf], a[3]); os.close(fd); v = n
    elif op == "tmpfile":
        fd = os.open(a[1], os.O_TMPFILE | os.O_RDWR, 0o600); os.write(fd, b"anon"); os.close(fd); v = "ok"
    elif op == "mmap_msync":
        fd = os.open(a[1], os.O_RDWR)
        m = mmap.mmap(fd, 0)
        m[a[2]:a[2] + len(a[3])] = a[3].encode()
        m.flush()
        m.close(); os.close(fd); v = "ok"
    elif op == "fchmodat_nofollow":
        check(libc.fchmodat(-100, a[1].encode(), a[2], 0x100)); v = "ok"
    else:
        raise Exception("unknown op " + op)
    print(json.dumps({"value": v}))
except OSError as e:
    err(e.errno)
`;

function py(args: Value[]): Value {
  if (!fs.existsSync(PYTHON)) return 'skipped';
  const r = spawnSync(PYTHON, ['-c', PY, JSON.stringify(args)], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`python helper failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { value?: Value; code?: string };
  if (out.code) throw Object.assign(new Error(out.code), { code: out.code });
  return out.value ?? null;
}

/** bind(2) a unix socket at `p`, connect to it, exchange a byte; `keepAs`: rename the node before closing (libuv unlinks the bound path on close). */
async function bind(p: string, keepAs: string | null): Promise<Value> {
  const server = net.createServer((s) => s.once('data', (d) => s.end(d)));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, () => resolve());
  });
  try {
    const echoed = await new Promise<string>((resolve, reject) => {
      const c = net.connect(p, () => c.write('x'));
      let got = '';
      c.on('data', (d) => { got += d.toString(); });
      c.on('end', () => resolve(got));
      c.on('error', reject);
    });
    if (keepAs) fs.renameSync(p, keepAs);
    return `echo ${echoed}`;
  } finally {
    await new Promise((r) => server.close(r));
  }
}

/** Replaces `${CASE}` in string arguments by the absolute case directory. */
function expand(v: Value, caseDir: string): Value {
  if (typeof v === 'string') return v.split('${CASE}').join(caseDir);
  if (Array.isArray(v)) return v.map((x) => expand(x, caseDir));
  return v;
}

const handles = new Map<string, number>();
let caseDir = process.cwd();

function fd(h: Value): number {
  const f = handles.get(String(h));
  if (f === undefined) throw new Error(`no open handle ${String(h)}`);
  return f;
}

async function exec(op: string, a: Value[]): Promise<Value> {
  const s = (i: number) => a[i] as string;
  const n = (i: number) => a[i] as number;
  switch (op) {
    case 'case': // start of a case: go to its directory, forget handles
      for (const f of handles.values()) fs.closeSync(f);
      handles.clear();
      caseDir = s(0);
      process.chdir(caseDir);
      return null;
    case 'chdir': process.chdir(s(0)); return null;
    case 'open': handles.set(String(a[3] ?? '_'), fs.openSync(s(0), flagsOf(a[1]!), (a[2] as number | undefined) ?? 0o644)); return null;
    case 'close': fs.closeSync(fd(a[0] ?? '_')); handles.delete(String(a[0] ?? '_')); return null;
    case 'touch': fs.closeSync(fs.openSync(s(0), flagsOf(a[1] ?? ['WRONLY', 'CREAT']), (a[2] as number | undefined) ?? 0o644)); return null;
    case 'write': return fs.writeSync(fd(a[0]!), Buffer.from(s(1)), 0, Buffer.byteLength(s(1)), a[2] as number | null ?? null);
    case 'read': {
      const b = Buffer.alloc(n(1));
      return b.subarray(0, fs.readSync(fd(a[0]!), b, 0, n(1), a[2] as number | null ?? null)).toString();
    }
    case 'fsync': fs.fsyncSync(fd(a[0] ?? '_')); return null;
    case 'fdatasync': fs.fdatasyncSync(fd(a[0] ?? '_')); return null;
    case 'ftruncate': fs.ftruncateSync(fd(a[0]!), n(1)); return null;
    case 'fstat': return attrs(fs.fstatSync(fd(a[0] ?? '_')));
    case 'fchmod': fs.fchmodSync(fd(a[0]!), n(1)); return null;
    case 'fchown': fs.fchownSync(fd(a[0]!), n(1), n(2)); return null;
    case 'writeFile': fs.writeFileSync(s(0), s(1), { mode: (a[2] as number | undefined) ?? 0o644, flag: (a[3] as string | undefined) ?? 'w' }); return null;
    case 'readFile': return fs.readFileSync(s(0), 'utf8');
    case 'mkdir': fs.mkdirSync(s(0), (a[1] as number | undefined) ?? 0o755); return null;
    case 'rmdir': fs.rmdirSync(s(0)); return null;
    case 'unlink': fs.unlinkSync(s(0)); return null;
    case 'rename': fs.renameSync(s(0), s(1)); return null;
    case 'symlink': fs.symlinkSync(s(0), s(1)); return null;
    case 'readlink': return short(fs.readlinkSync(s(0)));
    case 'link': fs.linkSync(s(0), s(1)); return null;
    case 'chmod': fs.chmodSync(s(0), n(1)); return null;
    case 'chown': fs.chownSync(s(0), n(1), n(2)); return null;
    case 'lchown': fs.lchownSync(s(0), n(1), n(2)); return null;
    case 'utimes': fs.utimesSync(s(0), n(1), n(2)); return null;
    case 'lutimes': fs.lutimesSync(s(0), n(1), n(2)); return null;
    case 'times': return timesOf(s(0));
    case 'truncate': fs.truncateSync(s(0), n(1)); return null;
    case 'stat': return attrs(fs.statSync(s(0)));
    case 'lstat': return attrs(fs.lstatSync(s(0)));
    case 'readdir': return fs.readdirSync(s(0)).sort().map(short);
    case 'access': {
      const m = s(1);
      fs.accessSync(s(0), m === 'F' ? C.F_OK : (m.includes('R') ? C.R_OK : 0) | (m.includes('W') ? C.W_OK : 0) | (m.includes('X') ? C.X_OK : 0));
      return null;
    }
    case 'statfs': {
      const st = fs.statfsSync(s(0));
      return { type: st.type, bsize: st.bsize, blocks: st.blocks, files: st.files };
    }
    case 'tree': return tree(a[0] === undefined ? '.' : s(0));
    case 'bind': return bind(s(0), (a[1] as string | undefined) ?? null);
    case 'fifo_rw': {
      const f = fs.openSync(s(0), C.O_RDWR | C.O_NONBLOCK);
      try {
        fs.writeSync(f, 'p');
        const b = Buffer.alloc(4);
        return b.subarray(0, fs.readSync(f, b, 0, 4, null)).toString();
      } finally {
        fs.closeSync(f);
      }
    }
    case 'tool': return toolResult(spawnSync(s(0), a.slice(1) as string[], { encoding: 'utf8', timeout: 30_000 }));
    case 'py': return py(a);
    case 'abspath': {
      // an absolute path of exactly `total` bytes below the case directory (200-byte directories, created by relative
      // mkdir/chdir, then a leaf), and `what` done to it by that absolute path
      const total = n(0);
      const comps: string[] = [];
      let len = Buffer.byteLength(caseDir);
      while (total - len > 203) {
        comps.push('p'.repeat(200));
        len += 201;
      }
      const abs = [caseDir, ...comps, 'f'.repeat(total - len - 1)].join('/');
      for (const d of comps) {
        if (!fs.existsSync(d)) fs.mkdirSync(d);
        process.chdir(d);
      }
      process.chdir(caseDir);
      if (s(1) === 'create') fs.writeFileSync(abs, 'x');
      else if (s(1) === 'stat') return attrs(fs.statSync(abs));
      else if (s(1) === 'unlink') fs.unlinkSync(abs);
      return Buffer.byteLength(abs);
    }
    case 'deepen': {
      // chdir down through `count` new directories named `name` (creating them): reaches depths no absolute path can
      for (let i = 0; i < n(1); i++) {
        fs.mkdirSync(s(0));
        process.chdir(s(0));
      }
      return null;
    }
    case 'rmdeep': {
      // from the case directory, remove a chain made by `deepen` (deepest first), moving down by relative chdir
      let depth = 0;
      while (fs.existsSync(s(0))) {
        process.chdir(s(0));
        depth++;
      }
      for (; depth > 0; depth--) {
        process.chdir('..');
        fs.rmSync(s(0), { recursive: true });
      }
      return null;
    }
    default:
      throw new Error(`unknown op ${op}`);
  }
}

async function main(): Promise<void> {
  process.umask(0o022);
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const req = JSON.parse(line) as Request;
    let answer: Answer;
    try {
      const args = req.args.map((v) => expand(v, caseDir));
      answer = { id: req.id, ok: true, value: await exec(req.op, args) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!code) answer = { id: req.id, ok: false, code: `BUG ${(e as Error).message}` };
      else answer = { id: req.id, ok: false, code };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  }
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) await main();

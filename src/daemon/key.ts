import { hkdfSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BugError, UserError } from '../errors.js';

/**
 * The cluster key: 32 random bytes shared by every node of a cluster (`cluster.key` in the home, hex + newline,
 * mode 0600). It is never used directly on the wire; each protocol uses its own sub-key from `deriveKey`, so a
 * weakness in one protocol's use of its key does not expose the others.
 */
export const KEY_BYTES = 32;

/** What a sub-key is for. Each purpose gives an independent key; adding a purpose never changes existing ones. */
export type KeyPurpose = 'heartbeat' | 'control' | 'replication';

const HKDF_SALT = Buffer.from('tandem cluster key v1', 'utf8');

export function generateKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

/** HKDF-SHA256(key, salt "tandem cluster key v1", info = purpose) → 32 bytes. Deterministic: same key, same sub-key. */
export function deriveKey(key: Buffer, purpose: KeyPurpose): Buffer {
  if (key.length !== KEY_BYTES) throw new BugError(`deriveKey: cluster key must be ${KEY_BYTES} bytes, got ${key.length}`);
  return Buffer.from(hkdfSync('sha256', key, HKDF_SALT, Buffer.from(`tandem ${purpose}`, 'utf8'), 32));
}

/**
 * Writes `key` as hex + newline with mode 0600. Without `force`, refuses to replace an existing file (the key must stay
 * identical on every node). With `force`, the new file replaces the old one atomically (write aside, fsync, rename),
 * so a crash leaves either the old key or the new one, never a torn file.
 */
export async function writeKeyFile(file: string, key: Buffer, opts: { force?: boolean } = {}): Promise<void> {
  if (key.length !== KEY_BYTES) throw new BugError(`writeKeyFile: cluster key must be ${KEY_BYTES} bytes, got ${key.length}`);
  const text = `${key.toString('hex')}\n`;
  const target = opts.force ? `${file}.tmp-${process.pid}` : file;
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(target, 'wx', 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && !opts.force) {
      throw new UserError(
        `a cluster key already exists at ${file}. The key must be identical on every node: replacing it on one node ` +
          `cuts that node off from the others. To replace it anyway, pass --force, then copy the new ${path.basename(file)} ` +
          `to every node.`,
      );
    }
    if (code === 'EEXIST') {
      // a leftover from a crashed --force run of this pid; remove it and retry once
      await fs.rm(target, { force: true });
      handle = await fs.open(target, 'wx', 0o600);
    } else {
      throw writeError(file, e);
    }
  }
  try {
    await handle.chmod(0o600); // the umask can only remove bits, but be explicit
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (e) {
    await handle.close().catch(() => {});
    await fs.rm(target, { force: true });
    throw writeError(file, e);
  }
  await handle.close();
  if (opts.force) {
    try {
      await fs.rename(target, file);
    } catch (e) {
      await fs.rm(target, { force: true });
      throw writeError(file, e);
    }
  }
}

function writeError(file: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    return new UserError(`cannot write the cluster key: directory ${path.dirname(file)} does not exist. Check TANDEM_HOME or create the directory.`);
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new UserError(`cannot write the cluster key at ${file}: permission denied. Run the command as root.`);
  }
  return e instanceof Error ? e : new BugError(String(e));
}

/**
 * Reads and checks a key file written by `writeKeyFile`. Refuses (UserError) a missing file, a symlink, a file owned
 * by another user than root (or the user tandem runs as: whoever owns it can read it, or replace it with a key of
 * their own), a file that group or other users can access, and content that is not exactly 64 hex characters
 * (surrounding whitespace is allowed). Error messages never include the file's content.
 */
export async function readKeyFile(file: string): Promise<Buffer> {
  let text: string;
  try {
    const st = await fs.lstat(file);
    if (st.isSymbolicLink()) {
      throw new UserError(`the cluster key ${file} is a symlink. Replace it with the file itself (\`cp --remove-destination "$(readlink -f ${file})" ${file}\`), mode 0600, owned by root.`);
    }
    if (!st.isFile()) {
      throw new UserError(`the cluster key ${file} is not a regular file. Replace it with the cluster.key file from another node.`);
    }
    const me = process.geteuid?.() ?? 0;
    if (st.uid !== 0 && st.uid !== me) {
      throw new UserError(
        `the cluster key ${file} is owned by uid ${st.uid}, not root: that user can read it or replace it. ` +
          `Run \`chown root:root ${file}\`; if that user could have read it, generate a new key (\`tandem cluster genkey --force\`) ` +
          `and copy it to every node.`,
      );
    }
    const mode = st.mode & 0o777;
    if (mode & 0o077) {
      throw new UserError(
        `the cluster key ${file} is accessible by other users (mode ${mode.toString(8).padStart(4, '0')}). ` +
          `Run \`chmod 600 ${file}\`; if untrusted users could have read it, generate a new key ` +
          `(\`tandem cluster genkey --force\`) and copy it to every node.`,
      );
    }
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new UserError(`no cluster key at ${file}: run \`tandem cluster genkey\` on one node and copy the file to every node.`);
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new UserError(`cannot read the cluster key ${file}: permission denied. Run the command as root.`);
    }
    throw e;
  }
  const hex = text.trim();
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== KEY_BYTES * 2) {
    const what = /^[0-9a-fA-F]*$/.test(hex)
      ? `${hex.length} hexadecimal characters`
      : 'characters that are not hexadecimal';
    throw new UserError(
      `the cluster key ${file} is not valid: expected ${KEY_BYTES * 2} hexadecimal characters, found ${what}. ` +
        `Copy cluster.key again from another node, or generate a new one with \`tandem cluster genkey --force\` ` +
        `and copy it to every node.`,
    );
  }
  return Buffer.from(hex, 'hex');
}

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import * as tar from 'tar';
import type { CommandFlags, FanoutArgv } from '../cli/fanout.js';
import { loadCluster } from '../config/load.js';
import { EXIT_EXTERNAL_ERROR, UserError } from '../errors.js';
import { resolveHome } from '../home.js';
import { SSH_FAILED, type Ssh } from '../platform/ssh/ssh.js';

/**
 * The fan-out over ssh (README "Several nodes from one shell"): `tandem -H LIST COMMAND…` runs
 * `$TANDEM_REMOTE_BIN COMMAND…` (default `tandem`) on every node of LIST at once, through the `Ssh` seam.
 *
 * Output contract:
 *   - text: every line a node prints is printed as it arrives, prefixed with the node's name padded to the longest
 *     name (`node1 | …`); its stderr lines go to stderr the same way. An unreachable node gets one more stderr line
 *     saying so and how to try the connection by hand.
 *   - `--json` (anywhere in COMMAND): one document on stdout when every node is done, `FanoutDocument`. `--json` is
 *     passed on to the remote command when that command takes it (known from this tandem's own commands).
 * Exit code (`worstExitCode`): the highest exit code of any node, an unreachable node (ssh's 255) and a node without
 * the remote tandem (the shell's 127 or 126) counting as 11, with `error` saying which and the hint on stderr.
 */
export interface NodeResult {
  node: string;
  /** the remote tandem's exit code; 11 when the node could not be reached (see `error`) */
  exitCode: number;
  /** parsed JSON when the node printed one JSON document, else its text */
  stdout: unknown;
  stderr: string;
  /** why the node was not reached (ssh's message), else null */
  error: string | null;
}

export interface FanoutDocument {
  nodes: NodeResult[];
}

export interface FanoutDeps {
  ssh: Ssh;
  env: NodeJS.ProcessEnv;
  commandFlags: CommandFlags;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Runs the fan-out and returns its exit code. Throws UserError when the nodes or the --push source are wrong. */
export async function fanout(req: FanoutArgv, deps: FanoutDeps): Promise<number> {
  const nodes = req.hosts === '*' ? clusterNodes(deps.env) : req.hosts;
  const json = req.args.includes('--json');
  let args = req.args;
  if (json && !(await takesFlag(req.args, 'json', deps.commandFlags))) args = args.filter((a) => a !== '--json');
  const bin = deps.env.TANDEM_REMOTE_BIN?.trim() || 'tandem';
  const push = pushOf(args, deps.env);
  let command = remoteCommand(bin, args);
  let input: Uint8Array | undefined;
  if (push) {
    input = await packDirectory(push.dir);
    command = pushCommand(bin, push.rest);
  }
  const width = Math.max(...nodes.map((n) => n.length));
  const results = await Promise.all(nodes.map((node) => runOne(node, command, input, json ? null : width, deps)));
  if (json) {
    const doc: FanoutDocument = { nodes: results };
    deps.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    for (const r of results) {
      if (r.error === null) continue;
      const what = r.error.startsWith(NOT_FOUND)
        ? `${r.error}: install tandem there, or set TANDEM_REMOTE_BIN to its path on the nodes (e.g. /usr/local/bin/tandem)`
        : `unreachable (ssh exit 255): the command did not run there. Try the connection by hand: ${deps.ssh.describe(r.node)}`;
      deps.stderr.write(`${r.node.padEnd(width)} | ${what}\n`);
    }
  }
  return worstExitCode(results);
}

/** A POSIX shell's exit codes for a command it could not find / not execute: the remote tandem is not there. */
const SHELL_NOT_FOUND = 127;
const SHELL_NOT_EXECUTABLE = 126;
const NOT_FOUND = 'tandem is not found on this node';

/** The highest exit code of `results` (0 when empty); an unreachable node has 11 already. */
export function worstExitCode(results: readonly Pick<NodeResult, 'exitCode'>[]): number {
  return results.reduce((w, r) => Math.max(w, r.exitCode), 0);
}

/** One argument quoted for a POSIX shell: left as is when it holds only characters no shell treats specially. */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_\-.,:/@%+=]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The remote shell command: `bin` as given (a shell fragment, e.g. `sudo tandem`), then each argument quoted. */
export function remoteCommand(bin: string, args: readonly string[]): string {
  return [bin, ...args.map(shellQuote)].join(' ');
}

/**
 * The remote shell command of `config … --push`: the package arrives on stdin, is written to a temporary directory
 * (removed on exit) and given to `config --push` there. `rest` is the config command line without `--push DIR`.
 */
export function pushCommand(bin: string, rest: readonly string[]): string {
  return `d=$(mktemp -d) || exit ${EXIT_EXTERNAL_ERROR}; trap 'rm -rf "$d"' EXIT; cat > "$d/module.tar.gz" && ${remoteCommand(bin, rest)} --push "$d/module.tar.gz"`;
}

/**
 * `config … --push DIR` (or `--push=DIR`): the directory to send and the command line without it; null for any other
 * command line. The module must be named (-m or TANDEM_MODULE): the remote config needs it.
 */
export function pushOf(args: readonly string[], env: NodeJS.ProcessEnv): { dir: string; rest: string[] } | null {
  if (args[0] !== 'config') return null;
  const i = args.findIndex((a) => a === '--push' || a.startsWith('--push='));
  if (i < 0) return null;
  const dir = args[i] === '--push' ? args[i + 1] : args[i]!.slice('--push='.length);
  if (dir === undefined || dir === '' || dir.startsWith('-')) throw new UserError('config --push needs the module directory to send.', 'e.g. tandem -H node1,node2 config -m demo --push ./demo');
  const rest = [...args.slice(0, i), ...args.slice(i + (args[i] === '--push' ? 2 : 1))];
  const named = rest.some((a) => a === '-m' || a === '--module' || /^(-m.|--module=)/.test(a)) || !!env.TANDEM_MODULE;
  if (!named) throw new UserError('config --push needs the module\'s name: add -m NAME.', `e.g. tandem -H node1,node2 config -m demo --push ${dir}`);
  return { dir, rest };
}

/** The module directory `dir` as a gzipped tar (userconfig.xml and bin/ at its top), as `tandem install` takes it. */
export async function packDirectory(dir: string): Promise<Buffer> {
  const st = await fs.stat(path.join(dir, 'userconfig.xml')).catch(() => null);
  if (!st?.isFile()) throw new UserError(`${dir} is not a module directory (no userconfig.xml in it).`, 'give the directory that holds userconfig.xml and bin/');
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'tandem-push-'));
  try {
    const file = path.join(tmp, 'module.tar.gz');
    await tar.c({ file, cwd: dir, gzip: true, portable: true }, (await fs.readdir(dir)).sort());
    return await fs.readFile(file);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** The nodes of `$TANDEM_HOME/cluster.xml`, in its order (`-H '*'`). */
function clusterNodes(env: NodeJS.ProcessEnv): string[] {
  const home = resolveHome(env);
  try {
    return loadCluster(home).nodes;
  } catch (e) {
    if (e instanceof UserError) {
      throw new UserError(`-H '*' runs on every node of cluster.xml, and ${home.root}/cluster.xml cannot be read: ${e.message}`, 'name the nodes instead (-H node1,node2), or set TANDEM_HOME to the directory holding cluster.xml');
    }
    throw e;
  }
}

/** Whether the command of `args` (its leading words, longest match first: `lab up` → `lab:up`) takes `--flag`. */
async function takesFlag(args: readonly string[], flag: string, commandFlags: CommandFlags): Promise<boolean> {
  const words: string[] = [];
  for (const a of args) {
    if (a.startsWith('-')) break;
    words.push(a);
  }
  for (let n = words.length; n > 0; n--) {
    const flags = await commandFlags(words.slice(0, n).join(':'));
    if (flags) return flag in flags;
  }
  return true; // a command this tandem does not know (a newer one on the nodes?): pass the line on unchanged
}

async function runOne(node: string, command: string, input: Uint8Array | undefined, width: number | null, deps: FanoutDeps): Promise<NodeResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const prefix = `${node.padEnd(width ?? 0)} | `;
  const outLines = width === null ? null : lineWriter(prefix, deps.stdout);
  const errLines = width === null ? null : lineWriter(prefix, deps.stderr);
  const r = await deps.ssh.run(node, command, {
    ...(input ? { input } : {}),
    onStdout: (c) => { out.push(c); outLines?.write(c); },
    onStderr: (c) => { err.push(c); errLines?.write(c); },
  });
  outLines?.end();
  errLines?.end();
  const stdout = Buffer.concat(out).toString('utf8');
  const stderr = Buffer.concat(err).toString('utf8');
  const unreachable = r.code === SSH_FAILED || r.code === null;
  const notFound = r.code === SHELL_NOT_FOUND || r.code === SHELL_NOT_EXECUTABLE;
  const error = unreachable
    ? stderr.trim().split('\n').pop()!.trim() || (r.code === null ? 'ssh was killed by a signal' : 'ssh exited 255')
    : notFound ? `${NOT_FOUND} (the remote shell exited ${r.code})` : null;
  return { node, exitCode: error === null ? r.code! : EXIT_EXTERNAL_ERROR, stdout: parseJson(stdout), stderr, error };
}

function parseJson(text: string): unknown {
  if (!/^\s*[[{]/.test(text)) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text; // JSON Lines (log --json) or not JSON at all: the text as printed
  }
}

/** Writes whole lines of the chunks given, each with `prefix`; `end` writes a last unterminated line. */
function lineWriter(prefix: string, to: NodeJS.WritableStream): { write(c: Buffer): void; end(): void } {
  let pending = '';
  const decoder = new StringDecoder('utf8'); // a character split across two chunks stays whole
  return {
    write(c) {
      const text = pending + decoder.write(c);
      const lines = text.split('\n');
      pending = lines.pop()!;
      if (lines.length) to.write(lines.map((l) => `${prefix}${l.replace(/\r$/, '')}\n`).join(''));
    },
    end() {
      pending += decoder.end();
      if (pending !== '') to.write(`${prefix}${pending}\n`);
      pending = '';
    },
  };
}

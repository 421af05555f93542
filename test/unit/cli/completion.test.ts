/**
 * The completions printed by `tandem completion bash|zsh|fish` (src/cli/completion.ts), run by the real shells: for
 * every command of the manifest (oclif's Config, what the CLI loads) the flags each shell offers are exactly the
 * command's flags (long and short) plus --help: every completed flag exists, every flag is completed. Also command
 * and topic names, option values, module names for -m. bash is driven through COMP_WORDS; fish through
 * `complete -C`; zsh by running the script with `_arguments`/`_describe` replaced by functions that print what they
 * are given (zsh's completion system needs a terminal).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Config } from '@oclif/core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { specFromConfig, type CompletionSpec } from '../../../src/cli/completion.js';
import { EXIT_USAGE } from '../../../src/errors.js';
import { BIN, cliEnv, ROOT, runProcess, type Run } from './run.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdcomp-'));
const home = path.join(dir, 'home');
fs.mkdirSync(path.join(home, 'modules', 'demo'), { recursive: true });
fs.mkdirSync(path.join(home, 'modules', 'web-2'), { recursive: true });
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

const run = (cmd: string, args: string[], input?: string): Promise<Run> =>
  runProcess(cmd, args, { cwd: dir, env: cliEnv({ TANDEM_HOME: home }), ...(input !== undefined ? { input } : {}) });


let spec: CompletionSpec;
const scripts: Record<string, string> = {};
/** straight from the manifest, not from the generator: command id (words) → its flag words, plus --help */
const manifest = new Map<string, string[]>();
type Cmd = CompletionSpec['commands'][number];
const flagWords = (c: Cmd) => manifest.get(c.id)!;

test.before(async () => {
  const config = await Config.load(ROOT);
  for (const c of config.commands.filter((x) => !x.hidden)) {
    manifest.set(c.id.split(':').join(' '), [...Object.entries(c.flags).flatMap(([n, f]) => [`--${n}`, ...(f.char ? [`-${f.char}`] : [])]), '--help']);
  }
  spec = specFromConfig(config);
  for (const shell of ['bash', 'zsh', 'fish']) {
    const r = await run(process.execPath, [BIN, 'completion', shell]);
    assert.is(r.code, 0, r.stderr);
    scripts[shell] = path.join(dir, `completion.${shell}`);
    fs.writeFileSync(scripts[shell]!, r.stdout);
  }
});

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Sections `@@ key` → the words printed under each, from one shell run. */
function sections(out: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  let cur: string[] | null = null;
  for (const line of out.split('\n')) {
    if (line.startsWith('@@ ')) m.set(line.slice(3), (cur = []));
    else if (line.trim() && cur) cur.push(...line.trim().split(/\s+/));
  }
  return m;
}

test('the spec holds every visible command of the manifest, and names and topics from it', () => {
  const ids = spec.commands.map((c) => c.id);
  assert.equal(sorted(ids), sorted(manifest.keys()));
  assert.equal(sorted(spec.top.map((t) => t.name)), sorted([...manifest.keys()].map((id) => id.split(' ')[0]!)));
  for (const [t, subs] of Object.entries(spec.topics)) {
    assert.equal(sorted(subs.map((x) => `${t} ${x.name}`)), sorted([...manifest.keys()].filter((id) => id.startsWith(`${t} `))));
  }
  for (const id of ['state', 'status', 'package', 'completion', 'cluster genkey', 'lab up', 'install']) assert.ok(ids.includes(id), id);
  assert.not.ok(ids.some((id) => id.startsWith('__')), 'hidden commands are not completed');
  assert.equal(Object.keys(spec.topics).sort(), ['cluster', 'lab']);
});

test('bash: every command completes exactly its flags; names, values and modules', async () => {
  const q: Array<[string, string]> = [['top', 'tandem ""'], ...Object.keys(spec.topics).map((t): [string, string] => [`topic ${t}`, `tandem ${t} ""`]),
    ...spec.commands.map((c): [string, string] => [`flags ${c.id}`, `tandem ${c.id} -`]),
    ['module', 'tandem state -m ""'], ['module-after', 'tandem log -n 5 -m ""'], ['set -v', 'tandem set -m demo -v ""'], ['errd', 'tandem errd -m demo ""'],
    ['after-value', 'tandem get -m demo -r x -']];
  const body = [`source ${shq(scripts.bash!)}`,
    't() { local key="$1"; shift; eval "COMP_WORDS=($*)"; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _tandem; echo "@@ $key"; echo "${COMPREPLY[*]}"; }',
    ...q.map(([k, line]) => `t ${shq(k)} ${shq(line)}`)].join('\n');
  const r = await run('bash', ['-c', body]);
  assert.is(r.code, 0, r.stderr);
  const got = sections(r.stdout);
  assert.equal(sorted(got.get('top')!), sorted(spec.top.map((t) => t.name)));
  for (const t of Object.keys(spec.topics)) assert.equal(sorted(got.get(`topic ${t}`)!), sorted(spec.topics[t]!.map((s) => s.name)));
  for (const c of spec.commands) assert.equal(sorted(got.get(`flags ${c.id}`)!), sorted(flagWords(c)), `bash: tandem ${c.id} -`);
  assert.equal(sorted(got.get('module')!), ['demo', 'web-2']);
  assert.equal(sorted(got.get('module-after')!), ['demo', 'web-2']);
  assert.equal(sorted(got.get('set -v')!), ['down', 'up']);
  assert.equal(sorted(got.get('errd')!), ['list', 'off', 'on']);
  assert.equal(sorted(got.get('after-value')!), sorted(flagWords(spec.commands.find((c) => c.id === 'get')!)));
});

test('fish: every command completes exactly its flags; names, values and modules', async () => {
  const q: Array<[string, string]> = [['top', 'tandem '], ...Object.keys(spec.topics).map((t): [string, string] => [`topic ${t}`, `tandem ${t} `]),
    ...spec.commands.flatMap((c): Array<[string, string]> => [[`flags ${c.id}`, `tandem ${c.id} -`], [`flags ${c.id}`, `tandem ${c.id} --`]]),
    ['module', 'tandem state -m '], ['set -v', 'tandem set -m demo -v '], ['errd', 'tandem errd -m demo '], ['after-value', 'tandem get -m demo -r x -']];
  const body = [`source ${shq(scripts.fish!)}`, ...q.map(([k, line]) => `echo '@@ ${k}'; complete -C ${shq(line)} | string replace -r '\\t.*' ''`)].join('\n');
  const r = await run('fish', ['--no-config', '-c', body]);
  assert.is(r.code, 0, r.stderr);
  const got = new Map<string, string[]>();
  let key = '';
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('@@ ')) { key = line.slice(3); if (!got.has(key)) got.set(key, []); } else if (line.trim()) got.get(key)!.push(line.trim());
  }
  assert.equal(sorted(got.get('top')!), sorted(spec.top.map((t) => t.name)));
  for (const t of Object.keys(spec.topics)) assert.equal(sorted(got.get(`topic ${t}`)!), sorted(spec.topics[t]!.map((s) => s.name)));
  for (const c of spec.commands) assert.equal(sorted(got.get(`flags ${c.id}`)!), sorted(flagWords(c)), `fish: tandem ${c.id} -`);
  assert.equal(sorted(got.get('module')!), ['demo', 'web-2']);
  assert.equal(sorted(got.get('set -v')!), ['down', 'up']);
  assert.equal(sorted(got.get('errd')!), ['list', 'off', 'on']);
  assert.equal(sorted(got.get('after-value')!), sorted(flagWords(spec.commands.find((c) => c.id === 'get')!)));
});

test('zsh: every command hands _arguments exactly its flags; command names; -m completes the modules', async () => {
  const body = ['compdef() { }',
    '_describe() { print -r -- "${(@)${(P)2}%%:*}" }',
    '_arguments() { print -rl -- "${@[2,-1]}" }',
    'compadd() { [[ $1 == -a ]] && print -r -- ${(P)2} }',
    `source ${shq(scripts.zsh!)}`,
    't() { local key=$1; shift; words=("$@"); CURRENT=${#words}; print -r -- "@@ $key"; _tandem }',
    "t top tandem ''",
    ...Object.keys(spec.topics).map((t) => `t ${shq(`topic ${t}`)} tandem ${t} ''`),
    ...spec.commands.map((c) => `t ${shq(`flags ${c.id}`)} tandem ${c.id} -`),
    "print -r -- '@@ module'; _tandem_modules"].join('\n');
  const r = await run('zsh', ['-f', '-c', body]);
  assert.is(r.code, 0, r.stderr);
  const got = new Map<string, string[]>();
  let key = '';
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('@@ ')) got.set((key = line.slice(3)), []);
    else if (line.trim()) got.get(key)!.push(line);
  }
  const words = (k: string) => got.get(k)!.flatMap((l) => l.trim().split(/\s+/));
  assert.equal(sorted(words('top')), sorted(spec.top.map((t) => t.name)));
  for (const t of Object.keys(spec.topics)) assert.equal(sorted(words(`topic ${t}`)), sorted(spec.topics[t]!.map((s) => s.name)));
  for (const c of spec.commands) {
    const specs = got.get(`flags ${c.id}`)!;
    const flags = specs.filter((s) => /^(\([^)]*\))?-/.test(s)).map((s) => /^(?:\([^)]*\))?(-{1,2}[\w-]+)/.exec(s)![1]!);
    assert.equal(sorted(flags), sorted(flagWords(c)), `zsh: tandem ${c.id}: ${specs.join(' | ')}`);
    assert.is(specs.filter((s) => /^\d+:/.test(s)).length, c.args.length, `zsh: tandem ${c.id} arguments`);
    for (const f of c.flags.filter((x) => x.name === 'module')) assert.ok(specs.some((s) => s.includes(`-${f.char}[`) && s.endsWith(':module:_tandem_modules')), c.id);
  }
  assert.equal(sorted(words('module')), ['demo', 'web-2']);
});

test('`tandem completion` with no or another shell is an invalid command line (64); the shells accept the scripts', async () => {
  for (const args of [['completion'], ['completion', 'tcsh']]) {
    const r = await run(process.execPath, [BIN, ...args]);
    assert.is(r.code, EXIT_USAGE, r.stderr);
  }
  assert.is(spawnSync('bash', ['-n', scripts.bash!]).status, 0);
  assert.is(spawnSync('zsh', ['-n', scripts.zsh!]).status, 0);
  assert.is(spawnSync('fish', ['--no-execute', scripts.fish!]).status, 0);
});

test('scripts/completions.mjs writes the same three files as `tandem completion`', async () => {
  const out = path.join(dir, 'repo');
  // run it on a copy of the repository layout it reads (package.json, dist/, node_modules via symlink)
  fs.mkdirSync(path.join(out, 'scripts'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(out, 'package.json'));
  fs.copyFileSync(path.join(ROOT, 'scripts', 'completions.mjs'), path.join(out, 'scripts', 'completions.mjs'));
  fs.symlinkSync(path.join(ROOT, 'dist'), path.join(out, 'dist'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(out, 'node_modules'));
  const r = await run(process.execPath, [path.join(out, 'scripts', 'completions.mjs')]);
  assert.is(r.code, 0, r.stderr);
  assert.is(fs.readFileSync(path.join(out, 'completions', 'tandem.bash'), 'utf8'), fs.readFileSync(scripts.bash!, 'utf8'));
  assert.is(fs.readFileSync(path.join(out, 'completions', '_tandem'), 'utf8'), fs.readFileSync(scripts.zsh!, 'utf8'));
  assert.is(fs.readFileSync(path.join(out, 'completions', 'tandem.fish'), 'utf8'), fs.readFileSync(scripts.fish!, 'utf8'));
});

test.run();

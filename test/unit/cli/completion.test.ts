/**
 * The completions printed by `tandem completion bash|zsh|fish` (src/cli/completion.ts), run by the real shells: for
 * every command of the manifest (oclif's Config, what the CLI loads) the flags each shell offers are exactly the
 * command's flags (long and short) plus --help: every completed flag exists, every flag is completed. Also command
 * and topic names, option values, module names for -m. Before the command, the fan-out flag (src/cli/fanout.ts):
 * `tandem -` offers exactly FANOUT_FLAG's -H and --hosts, each accepted by parseFanoutArgv; its value completes the
 * node names of a cluster.xml fixture (those parseClusterXml reads from it) comma by comma, plus '*'; after
 * `-H LIST` every command completes exactly as without it. bash is driven through COMP_WORDS; fish through
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
import { FANOUT_FLAG, parseFanoutArgv } from '../../../src/cli/fanout.js';
import { parseClusterXml } from '../../../src/config/cluster.js';
import { EXIT_USAGE } from '../../../src/errors.js';
import { BIN, cliEnv, ROOT, runProcess, type Run } from './run.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdcomp-'));
const home = path.join(dir, 'home');
fs.mkdirSync(path.join(home, 'modules', 'demo'), { recursive: true });
fs.mkdirSync(path.join(home, 'modules', 'web-2'), { recursive: true });
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
/** the README's shape, plus what XML allows and the completions must still read: single quotes, a <node> over two
 * lines, attributes in another order, one lan on one line, a commented-out node */
const CLUSTER_XML = `<cluster>
  <lans port="4800">                       <!-- UDP port of the heartbeats on every LAN (default 4800) -->
    <lan name="default">
      <node name="node1" addr="198.51.100.1"/>
      <node name='node2' addr='198.51.100.2'/>
      <!-- <node name="retired" addr="198.51.100.9"/> - gone since 2025 -->
      <node addr="198.51.100.3"
            name="node-3.b"/>
    </lan>
    <lan name="replication"><node name="node1" addr="203.0.113.1"/><node name='node2' addr="203.0.113.2"/><node name="node-3.b" addr="203.0.113.3"/></lan>
  </lans>
</cluster>
`;
fs.writeFileSync(path.join(home, 'cluster.xml'), CLUSTER_XML);
/** the node names as tandem itself reads them */
const NODES = parseClusterXml(CLUSTER_XML).nodes;
const ALL = FANOUT_FLAG.all;
const SEP = FANOUT_FLAG.separator;
/** straight from fanout.ts, not from the generator: the fan-out flag's words */
const FANOUT_WORDS = [`-${FANOUT_FLAG.char}`, `--${FANOUT_FLAG.name}`];
const [H, HOSTS] = FANOUT_WORDS as [string, string];
const nohome = path.join(dir, 'nohome');

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

/**
 * The queries about the fan-out flag, the same in every shell: key → [the words after `tandem` (the last one is
 * being completed), the words expected]. `all` is how the shell offers '*' (bash: quoted, as it is inserted).
 */
function fanoutQueries(all: string): Array<[string, string[], string[]]> {
  const others = (but: string[]) => NODES.filter((n) => !but.includes(n));
  return [
    ['fanout: first word', ['-'], FANOUT_WORDS],
    ['fanout: -H value', [H, ''], [...NODES, all]],
    ['fanout: --hosts value', [HOSTS, ''], [...NODES, all]],
    ['fanout: after one', [H, `node1${SEP}`], others(['node1']).map((n) => `node1${SEP}${n}`)],
    ['fanout: after two', [H, `node1${SEP}node-3.b${SEP}`], others(['node1', 'node-3.b']).map((n) => `node1${SEP}node-3.b${SEP}${n}`)],
    ['fanout: -Hno', [`${H}no`], NODES.map((n) => `${H}${n}`)],
    ['fanout: --hosts=node2,', [`${HOSTS}=node2${SEP}`], others(['node2']).map((n) => `${HOSTS}=node2${SEP}${n}`)],
    ['fanout: command', [H, 'node1', ''], spec.top.map((t) => t.name)],
    ['fanout: topic', [`${H}node1`, 'lab', ''], spec.topics.lab!.map((s) => s.name)],
    ['fanout: option value', [`${HOSTS}=node1${SEP}node2`, 'set', '-m', 'demo', '-v', ''], ['down', 'up']],
    ['fanout: modules', [HOSTS, 'node1', 'state', '-m', ''], ['demo', 'web-2']],
    ['fanout: no second -H', [H, 'node1', '-'], []],
  ];
}
/** `tandem -H node1 <command> -` for every command: exactly its flags, as without -H */
const afterFanout = (c: Cmd) => `after -H: ${c.id}`;
/** bash offers '*' quoted, as it goes onto the command line */
const BASH_ALL = shq(ALL);
/** the COMP_WORDS of `tandem …words`, for eval */
const bashLine = (ws: string[]) => ['tandem', ...ws].map(shq).join(' ');

/** Every completed fan-out word is one parseFanoutArgv takes (with a list after it, or the list joined to it). */
function acceptedByFanout(got: Map<string, string[]>, unquoteAll: (w: string) => string): void {
  for (const w of got.get('fanout: first word')!) assert.equal(parseFanoutArgv([w, 'node1', 'status']), { hosts: ['node1'], args: ['status'] }, w);
  for (const w of got.get('fanout: -H value')!) {
    const v = unquoteAll(w);
    assert.equal(parseFanoutArgv([H, v, 'status'])!.hosts, v === ALL ? '*' : [v], w);
  }
  for (const w of [...got.get('fanout: -Hno')!, ...got.get('fanout: --hosts=node2,')!]) assert.ok(parseFanoutArgv([w, 'status']), w);
  for (const w of got.get('fanout: after two')!) assert.equal(parseFanoutArgv([H, w, 'status'])!.hosts, w.split(SEP), w);
}

function assertFanout(got: Map<string, string[]>, all: string, shell: string, skip: string[] = []): void {
  for (const [key, , want] of fanoutQueries(all)) if (!skip.includes(key)) assert.equal(sorted(got.get(key)!), sorted(want), `${shell}: ${key}`);
  for (const c of spec.commands) assert.equal(sorted(got.get(afterFanout(c))!), sorted(flagWords(c)), `${shell}: tandem -H node1 ${c.id} -`);
  assert.equal(got.get('fanout: no cluster.xml'), [all], `${shell}: without cluster.xml only '*'`);
}

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
  assert.equal(NODES, ['node1', 'node2', 'node-3.b'], 'the fixture: three nodes, the commented-out one is not');
});

test('bash: every command completes exactly its flags; names, values and modules', async () => {
  const q: Array<[string, string]> = [['top', 'tandem ""'], ...Object.keys(spec.topics).map((t): [string, string] => [`topic ${t}`, `tandem ${t} ""`]),
    ...spec.commands.map((c): [string, string] => [`flags ${c.id}`, `tandem ${c.id} -`]),
    ['module', 'tandem state -m ""'], ['module-after', 'tandem log -n 5 -m ""'], ['set -v', 'tandem set -m demo -v ""'], ['errd', 'tandem errd -m demo ""'],
    ['after-value', 'tandem get -m demo -r x -'],
    ...fanoutQueries(BASH_ALL).map(([k, ws]): [string, string] => [k, bashLine(ws)]),
    ...spec.commands.map((c): [string, string] => [afterFanout(c), bashLine([H, 'node1', ...c.id.split(' '), '-'])]),
    // what bash itself makes of --hosts=LIST and -H=LIST (COMP_WORDBREAKS holds '='): --hosts = LIST
    ['split: at =', bashLine([HOSTS, '='])], ['split: value', bashLine([HOSTS, '=', `node2${SEP}`])],
    ['split: command', bashLine([H, '=', 'node1', 'state', '-'])]];
  const body = [`source ${shq(scripts.bash!)}`,
    't() { local key="$1"; shift; eval "COMP_WORDS=($*)"; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _tandem; echo "@@ $key"; echo "${COMPREPLY[*]}"; }',
    ...q.map(([k, line]) => `t ${shq(k)} ${shq(line)}`),
    `TANDEM_HOME=${shq(nohome)}`, `t 'fanout: no cluster.xml' ${shq(bashLine([H, '']))}`].join('\n');
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
  assertFanout(got, BASH_ALL, 'bash');
  acceptedByFanout(got, (w) => (w === BASH_ALL ? ALL : w));
  assert.equal(sorted(got.get('split: at =')!), sorted([...NODES, BASH_ALL]));
  assert.equal(sorted(got.get('split: value')!), sorted(NODES.filter((n) => n !== 'node2').map((n) => `node2${SEP}${n}`)));
  assert.equal(sorted(got.get('split: command')!), sorted(flagWords(spec.commands.find((c) => c.id === 'state')!)));
});

test('fish: every command completes exactly its flags; names, values and modules', async () => {
  const q: Array<[string, string]> = [['top', 'tandem '], ...Object.keys(spec.topics).map((t): [string, string] => [`topic ${t}`, `tandem ${t} `]),
    ...spec.commands.flatMap((c): Array<[string, string]> => [[`flags ${c.id}`, `tandem ${c.id} -`], [`flags ${c.id}`, `tandem ${c.id} --`]]),
    ['module', 'tandem state -m '], ['set -v', 'tandem set -m demo -v '], ['errd', 'tandem errd -m demo '], ['after-value', 'tandem get -m demo -r x -'],
    ...fanoutQueries(ALL).map(([k, ws]): [string, string] => [k, ['tandem', ...ws].join(' ')]),
    ...spec.commands.map((c): [string, string] => [afterFanout(c), `tandem ${H} node1 ${c.id} -`]),
    ['fanout: first word', `tandem --`]];
  const ask = ([k, line]: [string, string]) => `echo '@@ ${k}'; complete -C ${shq(line)} | string replace -r '\\t.*' ''`;
  const body = [`source ${shq(scripts.fish!)}`, ...q.map(ask), `set -x TANDEM_HOME ${shq(nohome)}`, ask(['fanout: no cluster.xml', `tandem ${H} `])].join('\n');
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
  assertFanout(got, ALL, 'fish');
  acceptedByFanout(got, (w) => w);
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
    "print -r -- '@@ module'; _tandem_modules",
    ...fanoutQueries(ALL).map(([k, ws]) => `t ${shq(k)} tandem ${ws.map(shq).join(' ')}`),
    ...spec.commands.map((c) => `t ${shq(afterFanout(c))} tandem ${H} node1 ${c.id} -`),
    `TANDEM_HOME=${shq(nohome)}`, `t 'fanout: no cluster.xml' tandem ${H} ''`].join('\n');
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
  // _arguments prints one spec a line: the flags after -H are those of the specs, as above
  const fan = new Map([...got.keys()].map((k) => [k, k.startsWith('after -H: ')
    ? got.get(k)!.filter((s) => /^(\([^)]*\))?-/.test(s)).map((s) => /^(?:\([^)]*\))?(-{1,2}[\w-]+)/.exec(s)![1]!) : words(k)]));
  // values are _arguments' work (stubbed here): after -H LIST it gets the very specs it gets without
  assertFanout(fan, ALL, 'zsh', ['fanout: option value', 'fanout: modules']);
  assert.equal(got.get('fanout: option value'), got.get('flags set'));
  assert.equal(got.get('fanout: modules'), got.get('flags state'));
  acceptedByFanout(fan, (w) => w);
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

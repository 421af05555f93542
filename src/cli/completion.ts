import type { Command, Config } from '@oclif/core';
import { FANOUT_FLAG } from './fanout.js';

/**
 * Shell completions generated from the command manifest (what oclif loads: every command, its flags and arguments),
 * so that they cannot drift from the CLI (docs/design/completions.md). `tandem completion bash|zsh|fish` prints them;
 * scripts/completions.mjs writes them to completions/.
 *
 * What is completed: command names (two words for a topic: `cluster genkey`, `lab up`), each command's flags (long
 * and short) plus `--help`; the values of flags and arguments that list their options (`set -v up|down`,
 * `errd on|off|list`); the module names installed in `${TANDEM_HOME:-/var/lib/tandem}/modules` for `-m`; files for
 * arguments that name a file (`install SOURCE`, `package FILE`). The command is found from the first words that are
 * not flags, so it must come before its flags (as in every example of `--help`).
 *
 * Before the command, the fan-out flag of src/cli/fanout.ts (`-H`, `--hosts`: only as the first argument, as it is
 * parsed there) completes its list: the node names of `${TANDEM_HOME:-/var/lib/tandem}/cluster.xml` (the `name` of
 * every `<node>` element, found by tr/grep/sed, not by an XML parser), comma by comma, and `*` alone. After
 * `-H LIST` the command line completes as if `-H LIST` were not there.
 */
export interface CompletionSpec {
  /** the top-level words: commands without a topic, and topics */
  top: Array<{ name: string; summary: string }>;
  /** topic → its subcommands */
  topics: Record<string, Array<{ name: string; summary: string }>>;
  commands: CommandSpec[];
  /** the fan-out flag before the command (src/cli/fanout.ts) */
  fanout: FanoutSpec;
}

/** What the completions know of `tandem -H LIST COMMAND…`: all from FANOUT_FLAG. */
export interface FanoutSpec {
  /** `-H` */
  short: string;
  /** `--hosts` */
  long: string;
  summary: string;
  /** joins node names in LIST */
  separator: string;
  /** the LIST that means every node of cluster.xml */
  all: string;
}

export interface CommandSpec {
  /** words, e.g. `state` or `lab up` */
  id: string;
  summary: string;
  flags: FlagSpec[];
  args: ArgSpec[];
}

export interface FlagSpec {
  name: string;
  char: string | null;
  takesValue: boolean;
  summary: string;
  /** how its value is completed */
  values: ValueSpec;
}

export interface ArgSpec {
  name: string;
  values: ValueSpec;
}

/** `none`: nothing to offer (a number, a host name) */
export type ValueSpec = { kind: 'options'; options: string[] } | { kind: 'modules' } | { kind: 'files' } | { kind: 'none' };

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** Flags every command accepts besides its own (oclif answers them). */
export const GLOBAL_FLAGS = ['--help'];

const FILE_ARGS = new Set(['source', 'file']);

/** The completion spec of the visible commands of a loaded oclif `config`. */
export function specFromConfig(config: Config): CompletionSpec {
  const sep = ':';
  const visible = config.commands.filter((c) => !c.hidden).sort((a, b) => a.id.localeCompare(b.id));
  const commands = visible.map((c) => commandSpec(c, sep));
  const topics: Record<string, Array<{ name: string; summary: string }>> = {};
  const top = new Map<string, string>();
  for (const c of commands) {
    const [first, ...rest] = c.id.split(' ');
    if (rest.length === 0) {
      top.set(first!, c.summary);
      continue;
    }
    if (!top.has(first!)) top.set(first!, oneLine(config.topics.find((t) => t.name === first)?.description ?? first!));
    (topics[first!] ??= []).push({ name: rest.join(' '), summary: c.summary });
  }
  return { top: [...top].map(([name, summary]) => ({ name, summary })), topics, commands, fanout: fanoutSpec() };
}

export function fanoutSpec(): FanoutSpec {
  const f = FANOUT_FLAG;
  return { short: `-${f.char}`, long: `--${f.name}`, summary: f.summary, separator: f.separator, all: f.all };
}

/** The fan-out flag's words, as the completions offer them before the command. */
export const fanoutWords = (f: FanoutSpec) => [f.short, f.long];

function commandSpec(c: Command.Loadable, sep: string): CommandSpec {
  const flags = Object.entries(c.flags).filter(([, f]) => !f.hidden).map(([name, f]): FlagSpec => {
    const takesValue = f.type === 'option';
    const options = takesValue ? (f as { options?: readonly string[] }).options : undefined;
    const values: ValueSpec = !takesValue ? { kind: 'none' } : options?.length ? { kind: 'options', options: [...options] }
      : name === 'module' ? { kind: 'modules' } : { kind: 'none' };
    return { name, char: f.char ?? null, takesValue, summary: oneLine(f.summary ?? f.description ?? name), values };
  });
  const args = Object.entries(c.args).map(([name, a]): ArgSpec => ({
    name,
    values: a.options?.length ? { kind: 'options', options: [...a.options] } : FILE_ARGS.has(name) ? { kind: 'files' } : { kind: 'none' },
  }));
  return { id: c.id.split(sep).join(' '), summary: oneLine(c.summary ?? c.description ?? c.id), flags, args };
}

const oneLine = (s: string) => s.split('\n')[0]!.trim();

export function completionScript(shell: Shell, spec: CompletionSpec, bin = 'tandem'): string {
  switch (shell) {
    case 'bash': return bashScript(spec, bin);
    case 'zsh': return zshScript(spec, bin);
    case 'fish': return fishScript(spec, bin);
  }
}

/** Every flag word a command accepts: `--name`, `-c`, and the global flags. */
export function flagWords(c: CommandSpec): string[] {
  return [...c.flags.flatMap((f) => [`--${f.name}`, ...(f.char ? [`-${f.char}`] : [])]), ...GLOBAL_FLAGS];
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const topicNames = (spec: CompletionSpec) => Object.keys(spec.topics).sort();
const header = (shell: Shell, bin: string) =>
  `# ${shell} completion for ${bin}, generated from its command manifest by \`${bin} completion ${shell}\`. Do not edit:\n` +
  `# regenerate it (scripts/completions.mjs) when commands or flags change.\n`;

/**
 * The node names of the cluster.xml at `file` (a shell word), one a line, in the order of the file (repeated once per
 * lan). Quotes are made double and lines joined first, so `name='n1'` and a `<node>` split over lines are found too;
 * comments are dropped (XML forbids `--` inside one, so `<!--([^-]|-[^-])*-->` is exactly a comment).
 * The same text runs in bash, zsh and fish (tr, grep and sed do the work; no shell expansion in it).
 */
const nodesPipe = (file: string) =>
  `tr "'\\n" '" ' < ${file} | sed 's/<!--\\([^-]\\|-[^-]\\)*-->//g' | grep -o '<node[[:space:]][^>]*' | sed -n 's/.*[[:space:]]name[[:space:]]*=[[:space:]]*"\\([^"]*\\)".*/\\1/p'`;

/**
 * awk over the node names: prints `pre` + the list typed so far up to its last separator + each node not yet in it,
 * once each (`-v pre=-H -v cur=node1,n` → `-Hnode1,node2`…; the shell filters by what is typed).
 */
const hostsAwk = (f: FanoutSpec) =>
  `'BEGIN { p = cur; sub(/[^${f.separator}]*$/, "", p); n = split(p, a, "${f.separator}"); for (i = 1; i <= n; i++) u[a[i]] = 1 } ` +
  `!($0 in u) && !s[$0]++ { print pre p $0 }'`;

/** Case patterns of the first word that holds the fan-out list after the flag: `-H=…`, `-H…`, `--hosts=…` (longest first). */
const joinedForms = (f: FanoutSpec) => [`${f.short}=`, `${f.long}=`, f.short];
/** The case pattern of a joined form: `-H=*`, `--hosts=*`, `-H?*` (bare `-H` is the flag itself). */
const joinedPattern = (p: string) => (p.endsWith('=') ? `${p}*` : `${p}?*`);

function bashScript(spec: CompletionSpec, bin: string): string {
  const fn = `_${bin.replace(/\W/g, '_')}`;
  const fo = spec.fanout;
  const L: string[] = [header('bash', bin).trimEnd(),
    `# Install: source it, or copy it to /etc/bash_completion.d/${bin}`,
    `${fn}_modules() { ls "\${TANDEM_HOME:-/var/lib/tandem}/modules" 2>/dev/null; }`,
    `${fn}_nodes() { local f="\${TANDEM_HOME:-/var/lib/tandem}/cluster.xml"; [ -r "$f" ] && ${nodesPipe('"$f"')}; }`,
    `# COMPREPLY for the ${fo.short} list: $1 the flag part of the word (${joinedForms(fo).join(', ')} or nothing), $2 the list typed so far`,
    `${fn}_hosts() {`,
    `  COMPREPLY=( $(compgen -W "$(${fn}_nodes | awk -v pre="$1" -v cur="$2" ${hostsAwk(fo)})" -- "$1$2") )`,
    `  if [ -z "$1" ] && [[ "${sq(fo.all)}" == "$2"* ]]; then COMPREPLY+=(${sq(sq(fo.all))}); fi`,
    '}',
    `${fn}() {`,
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" i w cmd="" flags="" vflags="" s=1',
    '  [ "$COMP_CWORD" -gt 0 ] && prev="${COMP_WORDS[COMP_CWORD-1]}"',
    `  # s: the first word after ${fo.short} LIST (bash splits ${fo.long}=LIST into ${fo.long} = LIST)`,
    '  case "${COMP_WORDS[1]-}" in',
    `    ${fo.short}|${fo.long}) s=3; [ "\${COMP_WORDS[2]-}" = = ] && s=4 ;;`,
    `    ${fo.short}?*|${fo.long}=*) s=2 ;;`,
    '  esac',
    '  if [ "$COMP_CWORD" -eq 1 ]; then',
    '    case "$cur" in',
    ...joinedForms(fo).map((p) => `      ${joinedPattern(p)}) ${fn}_hosts ${p} "\${cur#${p}}"; return ;;`),
    `      -*) COMPREPLY=( $(compgen -W ${sq(fanoutWords(fo).join(' '))} -- "$cur") ); return ;;`,
    '    esac',
    '  elif [ "$COMP_CWORD" -lt "$s" ]; then',
    `    [ "$cur" = = ] && cur=""; ${fn}_hosts "" "$cur"; return`,
    '  fi',
    '  local -a pos=()',
    '  for ((i = s; i < COMP_CWORD; i++)); do',
    '    w="${COMP_WORDS[i]}"',
    '    case "$w" in -*) continue ;; esac',
    '    case " $vflags " in *" ${COMP_WORDS[i-1]} "*) [ -n "$cmd" ] && continue ;; esac',
    '    if [ -z "$cmd" ]; then',
    '      case "$w" in',
    ...topicNames(spec).map((t) => `        ${t}) if [ $((i + 1)) -lt "$COMP_CWORD" ]; then i=$((i + 1)); cmd="${t} \${COMP_WORDS[i]}"; else cmd="${t}"; fi ;;`),
    '        *) cmd="$w" ;;',
    '      esac',
    `      ${fn}_flags`,
    '    else',
    '      pos+=("$w")',
    '    fi',
    '  done',
    '  if [ -z "$cmd" ]; then',
    `    COMPREPLY=( $(compgen -W ${sq(spec.top.map((t) => t.name).join(' '))} -- "$cur") ); return`,
    '  fi',
    '  case "$cmd" in',
    ...topicNames(spec).map((t) => `    ${t}) COMPREPLY=( $(compgen -W ${sq(spec.topics[t]!.map((s) => s.name).join(' '))} -- "$cur") ); return ;;`),
    '  esac',
    '  case "$cmd $prev" in',
  ];
  for (const c of spec.commands) {
    for (const f of c.flags.filter((x) => x.takesValue)) {
      const pats = [`--${f.name}`, ...(f.char ? [`-${f.char}`] : [])].map((p) => sq(`${c.id} ${p}`)).join('|');
      L.push(`    ${pats}) ${bashValues(f.values, fn)}; return ;;`);
    }
  }
  L.push('  esac',
    '  case "$cur" in -*) COMPREPLY=( $(compgen -W "$flags" -- "$cur") ); return ;; esac',
    '  case "$cmd ${#pos[@]}" in');
  for (const c of spec.commands) {
    c.args.forEach((a, i) => {
      if (a.values.kind !== 'none') L.push(`    ${sq(`${c.id} ${i}`)}) ${bashValues(a.values, fn)}; return ;;`);
    });
  }
  L.push('  esac',
    '  COMPREPLY=( $(compgen -W "$flags" -- "$cur") )',
    '}',
    `${fn}_flags() {`,
    '  case "$cmd" in');
  for (const c of spec.commands) {
    const v = c.flags.filter((f) => f.takesValue).flatMap((f) => [`--${f.name}`, ...(f.char ? [`-${f.char}`] : [])]);
    L.push(`    ${sq(c.id)}) flags=${sq(flagWords(c).join(' '))}; vflags=${sq(v.join(' '))} ;;`);
  }
  L.push('  esac', '}', `complete -F ${fn} ${bin}`, '');
  return L.join('\n');
}

function bashValues(v: ValueSpec, fn: string): string {
  switch (v.kind) {
    case 'options': return `COMPREPLY=( $(compgen -W ${sq(v.options.join(' '))} -- "$cur") )`;
    case 'modules': return `COMPREPLY=( $(compgen -W "$(${fn}_modules)" -- "$cur") )`;
    case 'files': return 'COMPREPLY=( $(compgen -f -- "$cur") )';
    case 'none': return 'COMPREPLY=()';
  }
}

/** zsh: one `_arguments` call per command; `_describe` for command names. */
function zshScript(spec: CompletionSpec, bin: string): string {
  const fn = `_${bin.replace(/\W/g, '_')}`;
  const desc = (s: string) => s.replace(/[[\]]/g, '').replace(/:/g, '\\:');
  const item = (name: string, summary: string) => sq(`${name.replace(/:/g, '\\:')}:${desc(summary)}`);
  const fo = spec.fanout;
  const L: string[] = [`#compdef ${bin}`, header('zsh', bin).trimEnd(),
    `# Install: copy it as _${bin} into a directory of $fpath (e.g. /usr/local/share/zsh/site-functions), or source it.`,
    `${fn}_modules() { local -a mods; mods=(\${TANDEM_HOME:-/var/lib/tandem}/modules/*(N/:t)); compadd -a mods; }`,
    `${fn}_nodes() { local f=\${TANDEM_HOME:-/var/lib/tandem}/cluster.xml; [[ -r $f ]] && ${nodesPipe('"$f"')}; }`,
    `# the ${fo.short} list: $1 the flag part of the word (${joinedForms(fo).join(', ')} or nothing), $2 the list typed so far`,
    `${fn}_hosts() {`,
    `  local -a c; c=(\${\${(f)"$(${fn}_nodes | awk -v pre="$1" -v cur="$2" ${hostsAwk(fo)})"}:#})`,
    `  [[ -z $1 && $2 != *${fo.separator}* ]] && c+=(${sq(fo.all)})`,
    '  compadd -a c',
    '}',
    `${fn}() {`,
    '  local cmd cur=$words[CURRENT]',
    '  local -a top fan',
    `  top=(${spec.top.map((t) => item(t.name, t.summary)).join(' ')})`,
    `  fan=(${fanoutWords(fo).map((w) => item(w, fo.summary)).join(' ')})`,
    '  if (( CURRENT == 2 )); then',
    '    case $cur in',
    ...joinedForms(fo).map((p) => `      ${joinedPattern(p)}) ${fn}_hosts ${p} "\${cur#${p}}"; return ;;`),
    '      -*) _describe option fan; return ;;',
    '    esac',
    '    _describe command top; return',
    '  fi',
    `  # after ${fo.short} LIST, as if it were not there`,
    '  case $words[2] in',
    `    ${fo.short}|${fo.long}) if (( CURRENT == 3 )); then ${fn}_hosts '' "$cur"; return; fi; words[2,3]=(); (( CURRENT -= 2 )) ;;`,
    `    ${fo.short}?*|${fo.long}=*) words[2]=(); (( CURRENT-- )) ;;`,
    '  esac',
    `  if (( CURRENT == 2 )); then [[ $cur == -* ]] || _describe command top; return; fi  # no second ${fo.short}`,
    '  cmd=$words[2]',
    '  case $cmd in'];
  for (const t of topicNames(spec)) {
    L.push(`    ${t})`,
      `      local -a subs; subs=(${spec.topics[t]!.map((s) => item(s.name, s.summary)).join(' ')})`,
      '      if (( CURRENT == 3 )); then _describe subcommand subs; return; fi',
      `      cmd="${t} $words[3]"; shift words; (( CURRENT-- )) ;;`);
  }
  L.push('  esac', '  shift words; (( CURRENT-- ))', '  case $cmd in');
  for (const c of spec.commands) {
    const specs = c.flags.map((f) => {
      const names = [`--${f.name}`, ...(f.char ? [`-${f.char}`] : [])];
      const excl = names.length > 1 ? `(${names.join(' ')})` : '';
      const value = f.takesValue ? `:${f.name}:${zshValues(f.values, fn)}` : '';
      return names.map((n) => sq(`${excl}${n}${f.takesValue && n.startsWith('--') ? '=' : ''}[${desc(f.summary)}]${value}`)).join(' ');
    });
    specs.push(sq('--help[show help]'));
    c.args.forEach((a, i) => specs.push(sq(`${i + 1}:${a.name}:${zshValues(a.values, fn)}`)));
    L.push(`    ${sq(c.id)}) _arguments -s ${specs.join(' ')} ;;`);
  }
  L.push('  esac', '}',
    `if [ "$funcstack[1]" = "${fn}" ]; then ${fn} "$@"; else compdef ${fn} ${bin}; fi`, '');
  return L.join('\n');
}

function zshValues(v: ValueSpec, fn: string): string {
  switch (v.kind) {
    case 'options': return `(${v.options.join(' ')})`;
    case 'modules': return `${fn}_modules`;
    case 'files': return '_files';
    case 'none': return ' ';
  }
}

/** fish: `complete` lines, conditioned on the command found by a helper. */
function fishScript(spec: CompletionSpec, bin: string): string {
  const fn = `__${bin.replace(/\W/g, '_')}`;
  const topics = topicNames(spec);
  const fo = spec.fanout;
  const joined = `^(${fo.short}=?|${fo.long}=)`;
  const L: string[] = [header('fish', bin).trimEnd(),
    `# Install: copy it to ~/.config/fish/completions/${bin}.fish (or /usr/share/fish/vendor_completions.d/).`,
    `function ${fn}_words --description 'the words of the command line that are neither flags nor flag values'`,
    '  set -l t (commandline -opc)',
    '  set -e t[1]',
    `  if contains -- "$t[1]" ${fanoutWords(fo).join(' ')}; set t $t[3..-1]`,
    `  else if string match -qr -- ${sq(joined.replace('=?', '.'))} "$t[1]"; set t $t[2..-1]; end`,
    '  set -l skip 0',
    '  set -l w',
    '  set -l vf',
    '  for x in $t',
    '    if test $skip = 1; set skip 0; continue; end',
    '    if string match -q -- \'-*\' $x',
    '      if contains -- $x $vf; set skip 1; end',
    '      continue',
    '    end',
    '    set -a w $x',
    '    set -l id $w[1]',
    `    if test (count $w) -ge 2; and contains -- "$w[1]" ${topics.join(' ')}; set id "$w[1] $w[2]"; end`,
    '    switch $id',
    ...spec.commands.filter((c) => c.flags.some((f) => f.takesValue)).map((c) =>
      `      case ${sq(c.id)}; set vf ${c.flags.filter((f) => f.takesValue).flatMap((f) => [`--${f.name}`, ...(f.char ? [`-${f.char}`] : [])]).join(' ')}`),
    '    end',
    '  end',
    '  for x in $w; echo $x; end',
    'end',
    `function ${fn}_cmd --description 'true when the command being completed is $argv'`,
    `  set -l w (${fn}_words)`,
    '  set -l id $w[1]',
    `  if contains -- "$w[1]" ${topics.join(' ')}; and test (count $w) -ge 2; set id "$w[1] $w[2]"; end`,
    '  test "$id" = "$argv"',
    'end',
    `function ${fn}_npos --description 'the number of arguments after the command'`,
    `  set -l w (${fn}_words)`,
    '  set -l n (math (count $w) - 1)',
    `  if contains -- "$w[1]" ${topics.join(' ')}; set n (math $n - 1); end`,
    '  echo $n',
    'end',
    `function ${fn}_modules; set -l h /var/lib/tandem; set -q TANDEM_HOME; and set h $TANDEM_HOME; ls "$h/modules" 2>/dev/null; end`,
    `function ${fn}_nodes; set -l h /var/lib/tandem; set -q TANDEM_HOME; and set h $TANDEM_HOME; test -r "$h/cluster.xml"; and ${nodesPipe('"$h/cluster.xml"')}; end`,
    `function ${fn}_fanout_here --description 'true before the command: at the first word, or at the value of ${fo.short}'`,
    '  set -l t (commandline -opc)',
    `  test (count $t) -eq 1; or begin; test (count $t) -eq 2; and contains -- "$t[2]" ${fanoutWords(fo).join(' ')}; end`,
    'end',
    `function ${fn}_hosts --description 'the ${fo.short} list being typed, node by node (fish adds back a joined ${fo.short} or ${fo.long}=)'`,
    '  set -l tok (commandline -ct)',
    `  set -l v (string replace -r -- ${sq(joined)} '' "$tok")`,
    `  ${fn}_nodes | awk -v pre= -v cur="$v" ${hostsAwk(fo)}`,
    `  string match -qr -- ${sq(`^-|${fo.separator}`)} "$tok"; or echo ${sq(fo.all)}`,
    'end',
    `complete -c ${bin} -f`,
    `complete -c ${bin} -n ${fn}_fanout_here -s ${fo.short.slice(1)} -l ${fo.long.slice(2)} -x -a '(${fn}_hosts)' -d ${sq(fo.summary)}`,
    ...spec.top.map((t) => `complete -c ${bin} -n 'test (count (${fn}_words)) -eq 0' -a ${sq(t.name)} -d ${sq(t.summary)}`),
  ];
  for (const t of topics) {
    for (const s of spec.topics[t]!) {
      L.push(`complete -c ${bin} -n ${sq(`set -l w (${fn}_words); test (count $w) -eq 1; and test "$w[1]" = ${t}`)} -a ${sq(s.name)} -d ${sq(s.summary)}`);
    }
  }
  for (const c of spec.commands) {
    const cond = sq(`${fn}_cmd ${c.id}`);
    for (const f of c.flags) {
      const v = !f.takesValue ? '' : f.values.kind === 'options' ? ` -x -a ${sq(f.values.options.join(' '))}`
        : f.values.kind === 'modules' ? ` -x -a '(${fn}_modules)'` : ' -x';
      L.push(`complete -c ${bin} -n ${cond} -l ${f.name}${f.char ? ` -s ${f.char}` : ''}${v} -d ${sq(f.summary)}`);
    }
    L.push(`complete -c ${bin} -n ${cond} -l help -d 'show help'`);
    c.args.forEach((a, i) => {
      if (a.values.kind === 'none' || a.values.kind === 'modules') return;
      const at = sq(`${fn}_cmd ${c.id}; and test (${fn}_npos) -eq ${i}`);
      L.push(a.values.kind === 'options' ? `complete -c ${bin} -n ${at} -a ${sq(a.values.options.join(' '))}` : `complete -c ${bin} -n ${at} -F`);
    });
  }
  L.push('');
  return L.join('\n');
}

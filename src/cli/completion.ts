import type { Command, Config } from '@oclif/core';

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
 */
export interface CompletionSpec {
  /** the top-level words: commands without a topic, and topics */
  top: Array<{ name: string; summary: string }>;
  /** topic → its subcommands */
  topics: Record<string, Array<{ name: string; summary: string }>>;
  commands: CommandSpec[];
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
  return { top: [...top].map(([name, summary]) => ({ name, summary })), topics, commands };
}

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

function bashScript(spec: CompletionSpec, bin: string): string {
  const fn = `_${bin.replace(/\W/g, '_')}`;
  const L: string[] = [header('bash', bin).trimEnd(),
    `# Install: source it, or copy it to /etc/bash_completion.d/${bin}`,
    `${fn}_modules() { ls "\${TANDEM_HOME:-/var/lib/tandem}/modules" 2>/dev/null; }`,
    `${fn}() {`,
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" i w cmd="" flags="" vflags=""',
    '  [ "$COMP_CWORD" -gt 0 ] && prev="${COMP_WORDS[COMP_CWORD-1]}"',
    '  local -a pos=()',
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
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
  const L: string[] = [`#compdef ${bin}`, header('zsh', bin).trimEnd(),
    `# Install: copy it as _${bin} into a directory of $fpath (e.g. /usr/local/share/zsh/site-functions), or source it.`,
    `${fn}_modules() { local -a mods; mods=(\${TANDEM_HOME:-/var/lib/tandem}/modules/*(N/:t)); compadd -a mods; }`,
    `${fn}() {`,
    '  local cmd',
    '  local -a top',
    `  top=(${spec.top.map((t) => item(t.name, t.summary)).join(' ')})`,
    '  if (( CURRENT == 2 )); then _describe command top; return; fi',
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
  const L: string[] = [header('fish', bin).trimEnd(),
    `# Install: copy it to ~/.config/fish/completions/${bin}.fish (or /usr/share/fish/vendor_completions.d/).`,
    `function ${fn}_words --description 'the words of the command line that are neither flags nor flag values'`,
    '  set -l t (commandline -opc)',
    '  set -e t[1]',
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
    `complete -c ${bin} -f`,
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

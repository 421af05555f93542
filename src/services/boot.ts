import fs from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../errors.js';
import type { RunFn } from '../platform/exec.js';

/**
 * `tandem boot on|off|status`: the daemon as a systemd unit (README "Starting at boot").
 *
 * Contract:
 * - `on` writes `<unitDir>/tandem.service` (mode 0644, replaced atomically, left alone when already identical) whose
 *   ExecStart runs the tandem that ran the command (`tandemArgv`), then enables it: with `systemctl daemon-reload` and
 *   `systemctl enable` when systemd runs and the unit is in its directory (`systemdDir`); otherwise by writing the symlink
 *   `<unitDir>/multi-user.target.wants/tandem.service` → the unit, as `systemctl enable` would (and says so).
 * - `off` disables it the same way; the unit file stays (status shows "installed, disabled"). Neither starts nor
 *   stops a running daemon: they decide what happens at the next boot.
 * - A failing systemctl is an ExternalError (command, exit code, stderr).
 */
export interface BootEnv {
  /** where units go: /etc/systemd/system, or TANDEM_SYSTEMD_DIR / --unit-dir (tests, packaging) */
  unitDir: string;
  /** systemctl (platform/exec.ts `run`) */
  run: RunFn;
  /** systemd is the running init (sd_booted(3): /run/systemd/system exists) */
  systemdRunning: boolean;
  /** the directory systemd reads units from (DEFAULT_UNIT_DIR); systemctl is used only for a unit there */
  systemdDir: string;
  /** the tandem running this command: process.execPath and process.argv[1] */
  execPath: string;
  script: string | undefined;
  /** TANDEM_HOME and TANDEM_RUN_DIR when set: the daemon must use the same home as this command */
  env: { TANDEM_HOME?: string; TANDEM_RUN_DIR?: string };
  /** whether a daemon answers on this node's control socket */
  daemonRunning(): Promise<boolean>;
}

export const UNIT_NAME = 'tandem.service';
export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
export const WANTED_BY = 'multi-user.target';

/**
 * The argv that runs this tandem: the node entry (`node /opt/tandem/bin/tandem`, script resolved to its real path, so a
 * /usr/local/bin symlink keeps working) or, for a single binary (bun --compile: argv[1] is a path inside the binary,
 * not a file on disk), the binary alone.
 */
export async function tandemArgv(execPath: string, script: string | undefined): Promise<string[]> {
  if (script && path.isAbsolute(script) && script !== execPath) {
    const st = await fs.stat(script).catch(() => null);
    if (st?.isFile()) return [execPath, await fs.realpath(script)];
  }
  return [execPath];
}

/**
 * One word of a systemd command line (systemd.syntax(7), systemd.service(5) "Command lines"): quoted when needed, `%`
 * (specifiers) doubled and, in ExecStart, `$` (variable expansion) doubled; Environment= does not expand `$`.
 */
export function systemdWord(s: string, where: 'exec' | 'environment' = 'exec'): string {
  const pct = s.replace(/%/g, '%%');
  const escaped = where === 'exec' ? pct.replace(/\$/g, '$$$$') : pct;
  return /^[A-Za-z0-9_@+=:,./-]+$/.test(escaped) ? escaped : `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The unit; for `/usr/local/bin/tandem` and no environment it is exactly contrib/tandem.service (a unit test holds that). */
export function unitText(argv: string[], env: BootEnv['env'] = {}): string {
  const envLines = (['TANDEM_HOME', 'TANDEM_RUN_DIR'] as const)
    .filter((k) => env[k])
    .map((k) => `Environment=${systemdWord(`${k}=${env[k]}`, 'environment')}\n`)
    .join('');
  return `# systemd unit for the tandem daemon, written by \`tandem boot on\` (which also enables it).
# contrib/tandem.service is this unit for /usr/local/bin/tandem.
[Unit]
Description=tandem high availability daemon
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=${[...argv, 'daemon'].map((w) => systemdWord(w)).join(' ')}
${envLines}Restart=always
RestartSec=1
# Stopping or restarting the daemon must not kill the applications its scripts started: a restarted daemon
# reattaches to them. Stop modules with \`tandem stop -m NAME\` for a clean handover before shutting a node down.
KillMode=process

[Install]
WantedBy=${WANTED_BY}
`;
}

const unitFile = (e: BootEnv) => path.join(e.unitDir, UNIT_NAME);
const wantsLink = (e: BootEnv) => path.join(e.unitDir, `${WANTED_BY}.wants`, UNIT_NAME);
const useSystemctl = (e: BootEnv) => e.systemdRunning && path.resolve(e.unitDir) === path.resolve(e.systemdDir);

export interface BootResult {
  unitFile: string;
  /** what happened to the unit file */
  unit: 'written' | 'updated' | 'unchanged' | 'kept' | 'absent';
  /** how it was enabled or disabled */
  via: 'systemctl' | 'symlink';
  enabled: boolean;
  execStart: string;
  messages: string[];
}

export async function bootOn(e: BootEnv): Promise<BootResult> {
  const argv = await tandemArgv(e.execPath, e.script);
  const text = unitText(argv, e.env);
  const file = unitFile(e);
  await fs.access(e.unitDir).catch(() => {
    throw new UserError(`cannot install the unit: ${e.unitDir} does not exist.`,
      e.unitDir === DEFAULT_UNIT_DIR ? 'is systemd installed on this machine? `tandem daemon` runs the daemon without it' : 'create the directory or give another --unit-dir');
  });
  const old = await fs.readFile(file, 'utf8').catch(() => null);
  const unit: BootResult['unit'] = old === null ? 'written' : old === text ? 'unchanged' : 'updated';
  if (unit !== 'unchanged') await writeAtomically(file, text);
  const execStart = text.match(/^ExecStart=(.*)$/m)![1]!;
  const messages = [`${unit === 'unchanged' ? 'unit already installed' : `${unit} ${file}`}: ExecStart=${execStart}`];
  if (useSystemctl(e)) {
    if (unit !== 'unchanged') await e.run('systemctl', ['daemon-reload']);
    await e.run('systemctl', ['enable', UNIT_NAME]);
    messages.push(`enabled: the daemon starts at every boot. Start it now with \`systemctl start tandem\` (\`tandem boot status\` shows it).`);
  } else {
    await enableLink(e);
    messages.push(`${e.systemdRunning ? `${e.unitDir} is not systemd's directory` : 'systemd is not running on this machine'}: ` +
      `enabled by writing the link ${wantsLink(e)} myself (what \`systemctl enable\` does). The daemon starts at the next boot under systemd; ` +
      'until then run `tandem daemon`.');
  }
  return { unitFile: file, unit, via: useSystemctl(e) ? 'systemctl' : 'symlink', enabled: true, execStart, messages };
}

export async function bootOff(e: BootEnv): Promise<BootResult> {
  const file = unitFile(e);
  const text = await fs.readFile(file, 'utf8').catch(() => null);
  const execStart = text?.match(/^ExecStart=(.*)$/m)?.[1] ?? '';
  const messages: string[] = [];
  if (useSystemctl(e)) {
    if (text !== null) await e.run('systemctl', ['disable', UNIT_NAME]);
  } else {
    const removed = await disableLink(e);
    if (removed) messages.push(`${e.systemdRunning ? `${e.unitDir} is not systemd's directory` : 'systemd is not running on this machine'}: removed the link ${wantsLink(e)} myself.`);
  }
  messages.push(text === null
    ? `no ${UNIT_NAME} in ${e.unitDir}: the daemon was not started at boot; nothing to do.`
    : `disabled: the daemon no longer starts at boot. A running daemon keeps running; ${file} stays (\`tandem boot on\` enables it again).`);
  return { unitFile: file, unit: text === null ? 'absent' : 'kept', via: useSystemctl(e) ? 'systemctl' : 'symlink', enabled: false, execStart, messages };
}

export interface BootStatus {
  unitFile: string;
  installed: boolean;
  /** the unit's ExecStart, and whether it runs the tandem that ran this command */
  execStart: string | null;
  current: boolean | null;
  /** systemctl is-enabled (enabled, disabled, masked, …), or from the wants link when systemd does not run */
  enabled: boolean;
  enabledState: string;
  /** systemctl is-active (active, inactive, failed, …); null when systemd does not run */
  active: string | null;
  /** whether a daemon answers on the control socket (started by systemd or not) */
  daemonRunning: boolean;
  /** systemctl was asked (systemd runs and the unit is in its directory) */
  systemd: boolean;
  systemdRunning: boolean;
}

export async function bootStatus(e: BootEnv): Promise<BootStatus> {
  const file = unitFile(e);
  const text = await fs.readFile(file, 'utf8').catch(() => null);
  const execStart = text?.match(/^ExecStart=(.*)$/m)?.[1] ?? null;
  const want = unitText(await tandemArgv(e.execPath, e.script), e.env).match(/^ExecStart=(.*)$/m)![1]!;
  let enabledState: string;
  let active: string | null = null;
  if (useSystemctl(e)) {
    enabledState = (await e.run('systemctl', ['is-enabled', UNIT_NAME], { reject: false })).stdout.trim() || 'not-found';
    active = (await e.run('systemctl', ['is-active', UNIT_NAME], { reject: false })).stdout.trim() || 'unknown';
  } else {
    const target = await fs.readlink(wantsLink(e)).catch(() => null);
    enabledState = target !== null && path.resolve(path.dirname(wantsLink(e)), target) === file && text !== null ? 'enabled' : 'disabled';
  }
  return {
    unitFile: file, installed: text !== null, execStart, current: execStart === null ? null : execStart === want,
    enabled: enabledState === 'enabled', enabledState, active, daemonRunning: await e.daemonRunning(), systemd: useSystemctl(e), systemdRunning: e.systemdRunning,
  };
}

export function formatBootStatus(s: BootStatus): string {
  const lines = [`unit ${s.unitFile}: ${s.installed ? 'installed' : 'not installed (`tandem boot on` installs and enables it)'}`];
  if (s.installed) {
    lines.push(`  ExecStart=${s.execStart}${s.current ? '' : '  (not this tandem: `tandem boot on` updates it)'}`);
    lines.push(`  ${s.enabled ? 'enabled: the daemon starts at boot' : `${s.enabledState}: the daemon does not start at boot (\`tandem boot on\`)`}`);
  }
  lines.push(s.active !== null ? `  systemd: ${s.active}`
    : s.systemdRunning ? `  not in systemd's directory: systemd does not see this unit`
      : '  systemd is not running on this machine: the unit takes effect at the next boot under systemd');
  lines.push(`  daemon: ${s.daemonRunning ? 'running (answers on its control socket)' : 'not running'}`);
  return lines.join('\n');
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const aside = `${file}.tmp-${process.pid}`;
  try {
    await fs.writeFile(aside, text, { mode: 0o644 });
    await fs.chmod(aside, 0o644);
    await fs.rename(aside, file);
  } catch (e) {
    await fs.rm(aside, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new UserError(`cannot write ${file}: ${(e as Error).message}.`, 'run `tandem boot on` as root');
    }
    throw e;
  }
}

async function enableLink(e: BootEnv): Promise<void> {
  const link = wantsLink(e);
  await fs.mkdir(path.dirname(link), { recursive: true, mode: 0o755 });
  const st = await fs.lstat(link).catch(() => null);
  if (st && !st.isSymbolicLink()) {
    throw new UserError(`${link} exists and is not a link; systemd would not know which one to start.`, `remove it (\`rm ${link}\`) and run \`tandem boot on\` again`);
  }
  if (st) {
    if ((await fs.readlink(link)) === unitFile(e)) return;
    await fs.rm(link);
  }
  await fs.symlink(unitFile(e), link);
}

async function disableLink(e: BootEnv): Promise<boolean> {
  const link = wantsLink(e);
  const st = await fs.lstat(link).catch(() => null);
  if (!st) return false;
  if (!st.isSymbolicLink()) {
    throw new UserError(`${link} is not a link to the unit: tandem did not write it.`, `look at it and remove it yourself (\`rm ${link}\`)`);
  }
  await fs.rm(link);
  return true;
}

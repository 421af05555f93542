// `tandem boot on|off|status` as a service (src/services/boot.ts) in a temporary unit directory: the unit it writes
// (ExecStart for the node entry and for a single binary, quoting, the home), the wants link it writes when systemd
// does not run, and the systemctl calls (fake) when it does. Files: /tmp/tandem-boot-test-*; removed after each test.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ExternalError, UserError } from '../../../src/errors.js';
import type { RunFn, RunOptions } from '../../../src/platform/exec.js';
import {
  bootOff, bootOn, bootStatus, DEFAULT_UNIT_DIR, formatBootStatus, systemdWord, tandemArgv, unitText, type BootEnv,
} from '../../../src/services/boot.js';

// dist/test/unit/services → repository root
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');

interface Fx {
  dir: string;
  unitDir: string;
  /** a node entry script on disk, reached through a symlink (as /usr/local/bin/tandem → /opt/tandem/bin/tandem) */
  script: string;
  link: string;
  env: (o?: Partial<BootEnv>) => BootEnv;
  calls: string[][];
}

function withFx(fn: (f: Fx) => Promise<void>) {
  return async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-boot-test-'));
    const unitDir = path.join(dir, 'etc', 'systemd', 'system');
    fs.mkdirSync(unitDir, { recursive: true });
    const script = path.join(dir, 'opt', 'tandem', 'bin', 'tandem');
    fs.mkdirSync(path.dirname(script), { recursive: true });
    fs.writeFileSync(script, '#!/usr/bin/env node\n');
    const link = path.join(dir, 'usr-local-bin-tandem');
    fs.symlinkSync(script, link);
    const calls: string[][] = [];
    const run: RunFn = async (cmd: string, args: string[], _o?: RunOptions) => {
      calls.push([cmd, ...args]);
      return { code: 0, stdout: '', stderr: '' };
    };
    const env = (o: Partial<BootEnv> = {}): BootEnv => ({
      unitDir, run, systemdRunning: false, systemdDir: DEFAULT_UNIT_DIR, execPath: '/usr/bin/node', script: link, env: {}, daemonRunning: async () => false, ...o,
    });
    try {
      await fn({ dir, unitDir, script, link, env, calls });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}

const execStartOf = (text: string) => text.match(/^ExecStart=(.*)$/m)?.[1];

test('contrib/tandem.service is the unit for /usr/local/bin/tandem', () => {
  assert.fixture(unitText(['/usr/local/bin/tandem']), fs.readFileSync(path.join(ROOT, 'contrib', 'tandem.service'), 'utf8'));
});

test('tandemArgv: node + the real path of the entry script; a single binary alone', withFx(async (f) => {
  assert.equal(await tandemArgv('/usr/bin/node', f.link), ['/usr/bin/node', f.script]);
  // bun --compile: argv[1] names a file inside the binary, not one on disk
  assert.equal(await tandemArgv('/usr/local/bin/tandem', '/$bunfs/root/tandem'), ['/usr/local/bin/tandem']);
  assert.equal(await tandemArgv('/usr/local/bin/tandem', '/usr/local/bin/tandem'), ['/usr/local/bin/tandem']);
  assert.equal(await tandemArgv('/usr/local/bin/tandem', undefined), ['/usr/local/bin/tandem']);
  // a relative argv[1] is not a path the daemon could be started from
  assert.equal(await tandemArgv('/usr/local/bin/tandem', 'tandem'), ['/usr/local/bin/tandem']);
}));

test('systemdWord: plain words as they are; spaces, quotes, % and $ escaped', () => {
  assert.is(systemdWord('/usr/bin/node'), '/usr/bin/node');
  assert.is(systemdWord('/opt/my tandem/bin/tandem'), '"/opt/my tandem/bin/tandem"');
  assert.is(systemdWord('/opt/50%/a"b\\c'), '"/opt/50%%/a\\"b\\\\c"');
  assert.is(systemdWord('/opt/$x'), '"/opt/$$x"');
  assert.is(systemdWord('TANDEM_HOME=/srv/$x', 'environment'), '"TANDEM_HOME=/srv/$x"');
});

test('on without systemd: writes the unit (0644, ExecStart = this tandem) and the wants link, and says so', withFx(async (f) => {
  const r = await bootOn(f.env());
  const unit = path.join(f.unitDir, 'tandem.service');
  const text = fs.readFileSync(unit, 'utf8');
  assert.is(execStartOf(text), `/usr/bin/node ${f.script} daemon`);
  assert.is(fs.statSync(unit).mode & 0o777, 0o644);
  assert.match(text, /^KillMode=process$/m);
  assert.match(text, /^WantedBy=multi-user.target$/m);
  assert.not.match(text, /Environment=/);
  const link = path.join(f.unitDir, 'multi-user.target.wants', 'tandem.service');
  assert.is(fs.readlinkSync(link), unit);
  assert.equal(f.calls, [], 'no systemctl without systemd');
  assert.is(r.unit, 'written');
  assert.is(r.via, 'symlink');
  assert.match(r.messages.join('\n'), 'systemd is not running on this machine: enabled by writing the link');
  assert.equal(fs.readdirSync(f.unitDir).sort(), ['multi-user.target.wants', 'tandem.service'], 'no temporary file left');
  // a second time: nothing changes
  const again = await bootOn(f.env());
  assert.is(again.unit, 'unchanged');
  assert.is(fs.readlinkSync(link), unit);
}));

test('on for a single binary, with a home of its own and a path with a space', withFx(async (f) => {
  const bin = path.join(f.dir, 'my apps', 'tandem');
  fs.mkdirSync(path.dirname(bin));
  fs.writeFileSync(bin, '');
  await bootOn(f.env({ execPath: bin, script: '/$bunfs/root/tandem', env: { TANDEM_HOME: '/srv/tandem home', TANDEM_RUN_DIR: '/run/tandem-a' } }));
  const text = fs.readFileSync(path.join(f.unitDir, 'tandem.service'), 'utf8');
  assert.is(execStartOf(text), `"${bin}" daemon`);
  assert.match(text, /^Environment="TANDEM_HOME=\/srv\/tandem home"$/m);
  assert.match(text, /^Environment=TANDEM_RUN_DIR=\/run\/tandem-a$/m);
}));

test('on replaces an older unit (another tandem) and says "updated"; status shows which tandem it runs', withFx(async (f) => {
  const unit = path.join(f.unitDir, 'tandem.service');
  fs.writeFileSync(unit, unitText(['/usr/local/bin/tandem']));
  let s = await bootStatus(f.env());
  assert.is(s.installed, true);
  assert.is(s.current, false);
  assert.is(s.enabled, false);
  assert.match(formatBootStatus(s), 'not this tandem: `tandem boot on` updates it');
  const r = await bootOn(f.env());
  assert.is(r.unit, 'updated');
  s = await bootStatus(f.env({ daemonRunning: async () => true }));
  assert.equal({ installed: s.installed, current: s.current, enabled: s.enabled, active: s.active, daemonRunning: s.daemonRunning, systemd: s.systemd },
    { installed: true, current: true, enabled: true, active: null, daemonRunning: true, systemd: false });
  assert.match(formatBootStatus(s), 'enabled: the daemon starts at boot');
  assert.match(formatBootStatus(s), 'daemon: running');
}));

test('off without systemd: removes the link, keeps the unit; off again and off when never installed are fine', withFx(async (f) => {
  await bootOn(f.env());
  const link = path.join(f.unitDir, 'multi-user.target.wants', 'tandem.service');
  const r = await bootOff(f.env());
  assert.not.ok(fs.existsSync(link));
  assert.ok(fs.existsSync(path.join(f.unitDir, 'tandem.service')));
  assert.is(r.unit, 'kept');
  assert.match(r.messages.join('\n'), 'removed the link');
  assert.match(r.messages.join('\n'), 'A running daemon keeps running');
  const s = await bootStatus(f.env());
  assert.is(s.installed, true);
  assert.is(s.enabled, false);
  assert.is(s.enabledState, 'disabled');
  assert.is((await bootOff(f.env())).unit, 'kept');
  fs.rmSync(path.join(f.unitDir, 'tandem.service'));
  const none = await bootOff(f.env());
  assert.is(none.unit, 'absent');
  assert.match(none.messages.join('\n'), 'nothing to do');
  assert.is((await bootStatus(f.env())).installed, false);
}));

test('a wants entry that is not a link is left alone (UserError saying what to do)', withFx(async (f) => {
  const link = path.join(f.unitDir, 'multi-user.target.wants', 'tandem.service');
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.writeFileSync(link, 'a copy someone made');
  for (const act of [bootOn, bootOff]) {
    let e: unknown;
    try {
      await act(f.env());
    } catch (x) {
      e = x;
    }
    assert.instance(e, UserError);
    assert.match((e as UserError).hint ?? '', `rm ${link}`);
  }
  assert.is(fs.readFileSync(link, 'utf8'), 'a copy someone made');
}));

test('a missing unit directory: UserError', withFx(async (f) => {
  let e: unknown;
  try {
    await bootOn(f.env({ unitDir: path.join(f.dir, 'nope') }));
  } catch (x) {
    e = x;
  }
  assert.instance(e, UserError);
  assert.match((e as Error).message, /nope does not exist/);
}));

test('with systemd: daemon-reload + enable, is-enabled/is-active, disable through systemctl; no link of its own', withFx(async (f) => {
  const answers: Record<string, { code: number; stdout: string; stderr: string }> = {
    'systemctl is-enabled tandem.service': { code: 0, stdout: 'enabled', stderr: '' },
    'systemctl is-active tandem.service': { code: 3, stdout: 'inactive', stderr: '' },
  };
  const calls: string[][] = [];
  const run: RunFn = async (cmd, args, o) => {
    calls.push([cmd, ...args]);
    const a = answers[[cmd, ...args].join(' ')] ?? { code: 0, stdout: '', stderr: '' };
    if (a.code !== 0 && o?.reject !== false) throw new ExternalError([cmd, ...args].join(' '), a.code, a.stderr);
    return a;
  };
  const sys = f.env({ systemdRunning: true, systemdDir: f.unitDir, run });
  const r = await bootOn(sys);
  assert.is(r.via, 'systemctl');
  assert.equal(calls, [['systemctl', 'daemon-reload'], ['systemctl', 'enable', 'tandem.service']]);
  assert.is(execStartOf(fs.readFileSync(path.join(f.unitDir, 'tandem.service'), 'utf8')), `/usr/bin/node ${f.script} daemon`);
  assert.not.ok(fs.existsSync(path.join(f.unitDir, 'multi-user.target.wants')), 'systemctl writes the link, not tandem');
  assert.match(r.messages.join('\n'), 'systemctl start tandem');
  calls.length = 0;
  await bootOn(sys);
  assert.equal(calls, [['systemctl', 'enable', 'tandem.service']], 'an unchanged unit needs no daemon-reload');
  calls.length = 0;
  const s = await bootStatus(sys);
  assert.equal({ enabled: s.enabled, enabledState: s.enabledState, active: s.active, systemd: s.systemd }, { enabled: true, enabledState: 'enabled', active: 'inactive', systemd: true });
  assert.match(formatBootStatus(s), 'systemd: inactive');
  calls.length = 0;
  await bootOff(sys);
  assert.equal(calls, [['systemctl', 'disable', 'tandem.service']]);
}));

test("systemd running but the unit is not in systemd's directory: the link is written, and the message says why", withFx(async (f) => {
  const r = await bootOn(f.env({ systemdRunning: true, systemdDir: DEFAULT_UNIT_DIR }));
  assert.is(r.via, 'symlink');
  assert.match(r.messages.join('\n'), `${f.unitDir} is not systemd's directory`);
  assert.equal(f.calls, []);
}));

test('systemctl failing: an ExternalError with its command, exit code and stderr', withFx(async (f) => {
  const run: RunFn = async (cmd, args) => {
    if (args[0] === 'enable') throw new ExternalError([cmd, ...args].join(' '), 1, 'Failed to enable unit: Access denied');
    return { code: 0, stdout: '', stderr: '' };
  };
  let e: unknown;
  try {
    await bootOn(f.env({ systemdRunning: true, systemdDir: f.unitDir, run }));
  } catch (x) {
    e = x;
  }
  assert.instance(e, ExternalError);
  assert.is((e as ExternalError).command, 'systemctl enable tandem.service');
  assert.is((e as ExternalError).exitCode, 1);
  assert.match((e as ExternalError).stderr, 'Access denied');
}));

test.run();

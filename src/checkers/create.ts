import type { CheckerConfig, ErrdConfig, ProcSpec } from '../config/types.js';
import type { ResourceState } from '../engine/rules/types.js';
import type { Clock } from '../platform/clock/types.js';
import type { Launcher } from '../platform/launcher/types.js';
import type { NetProbe } from '../platform/net/types.js';
import type { VipAdapter } from '../platform/vip/types.js';
import type { WitnessChecker } from '../platform/witness/types.js';
import { CustomChecker } from './custom.js';
import { IntfChecker } from './intf.js';
import { IpChecker } from './ip.js';
import { PingChecker } from './ping.js';
import { ProcChecker } from './proc.js';
import type { ProcScanner } from './proc-scanner.js';
import { TcpChecker } from './tcp.js';
import type { Checker, Report } from './types.js';

/** What checkers observe through; one set per daemon (the scanner above all must be shared). */
export interface CheckerPlatform {
  clock: Clock;
  net: NetProbe;
  witness: WitnessChecker;
  vip: Pick<VipAdapter, 'holds'>;
  launcher: Launcher;
  scanner: ProcScanner;
}

/** What a module gives its custom checkers' programs. */
export interface CustomContext {
  /** the program's environment; `TANDEM_RESOURCE=custom.<ident>` is added */
  env: Record<string, string>;
  /** the program's stdout and stderr are appended here (the module log) */
  logFile: string;
  /** exits and restarts */
  log: (msg: string) => void;
}

/** Receives every report of the checkers made here, with the checker's resource. */
export type ResourceReport = (resource: string, state: ResourceState, detail: string) => void;

/** `<check>` entries a checker of this room serves (`module` checkers need daemon state and are made by the daemon). */
export type LocalCheckerConfig = Exclude<CheckerConfig, { type: 'module' }>;

/**
 * The checker for one `<check>` entry (or one made by `<interface check>` / `<virtual_addr check>`), not started.
 * For `intf` the interface is looked up now (NetProbe.interfaceFor) and the resource is `intf.<ident>`, the ident
 * being the configured one or else that interface's name; when no interface holds or routes the address yet, the
 * address stands in for both and the checker keeps looking (IntfChecker).
 */
export async function createChecker(cfg: LocalCheckerConfig, p: CheckerPlatform, onReport: ResourceReport, custom: CustomContext): Promise<Checker> {
  let checker: Checker;
  const report: Report = (state, detail) => onReport(checker.resource, state, detail);
  const { clock } = p;
  switch (cfg.type) {
    case 'tcp':
      checker = new TcpChecker({
        ident: cfg.ident, addr: cfg.addr, port: cfg.port, intervalMs: cfg.intervalMs, timeoutMs: cfg.timeoutMs, net: p.net, clock, report,
        send: cfg.send === null ? null : Buffer.from(cfg.send, 'utf8'),
      });
      break;
    case 'ping':
      checker = new PingChecker({ ident: cfg.ident, addrs: cfg.addrs, intervalMs: cfg.intervalMs, timeoutMs: cfg.timeoutMs, witness: p.witness, clock, report });
      break;
    case 'intf': {
      const addr = cfg.localAddr ?? cfg.vip ?? '';
      const ifname = addr === '' ? null : await p.net.interfaceFor(addr).catch(() => null);
      const target = ifname !== null ? { ifname } : { addr };
      checker = new IntfChecker({ ident: cfg.ident || ifname || addr, target, intervalMs: cfg.intervalMs, net: p.net, clock, report });
      break;
    }
    case 'ip':
      checker = new IpChecker({ addr: cfg.addr, intervalMs: cfg.intervalMs, vip: p.vip, clock, report });
      break;
    case 'custom': {
      const env = { ...custom.env, TANDEM_RESOURCE: `custom.${cfg.ident}` };
      checker = new CustomChecker({ ident: cfg.ident, exec: cfg.exec, args: cfg.args, env, logFile: custom.logFile, log: custom.log, launcher: p.launcher, clock, report });
      break;
    }
  }
  return checker;
}

/** The checker of one errd `<proc>` entry, not started; it polls every `errd.polltimerMs`. */
export function createProcChecker(spec: ProcSpec, errd: Pick<ErrdConfig, 'polltimerMs'>, p: Pick<CheckerPlatform, 'clock' | 'scanner'>, onReport: ResourceReport): ProcChecker {
  let checker: ProcChecker;
  const report: Report = (state, detail) => onReport(checker.resource, state, detail);
  checker = new ProcChecker({ spec, polltimerMs: errd.polltimerMs, scanner: p.scanner, clock: p.clock, report });
  return checker;
}

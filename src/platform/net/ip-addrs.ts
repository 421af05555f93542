import { ExternalError } from '../../errors.js';
import type { LocalAddr } from '../../net/local-addrs.js';
import type { RunResult } from '../exec.js';

/** An IPv4 address as `ip -j -4 addr show` lists it, with whether its interface is the loopback one. */
export interface IpAddr extends LocalAddr {
  loopback: boolean;
}

/** One entry of `ip -j … show` (link or addr) output, the fields tandem reads. */
export interface IpLink {
  ifname: string;
  flags?: string[];
  address?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/**
 * Every IPv4 address of the host, in `ip` order, through `ip -j -4 addr show` run by `cmd` (which adds any
 * `ip netns exec` prefix). Interfaces that are down are listed too: getifaddrs as os.networkInterfaces() reports it
 * leaves out interfaces without IFF_RUNNING, so it cannot name the interface of a link that has lost its carrier.
 * Shared by the VIP adapter and the net probe. Throws ExternalError when `ip` fails or prints something else.
 */
export async function listIpv4Addrs(cmd: (cmd: string, args: string[]) => Promise<RunResult>): Promise<IpAddr[]> {
  const r = await cmd('ip', ['-j', '-4', 'addr', 'show']);
  return parseIpJson<IpLink[]>('ip -j -4 addr show', r.stdout).flatMap((l) =>
    (l.addr_info ?? [])
      .filter((ai) => ai.family === 'inet' && typeof ai.local === 'string')
      .map((ai) => ({ ifname: l.ifname, local: ai.local, prefixlen: ai.prefixlen, loopback: (l.flags ?? []).includes('LOOPBACK') })),
  );
}

export function parseIpJson<T>(command: string, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ExternalError(command, 0, '', `unexpected output from \`${command}\` (not JSON): ${text.slice(0, 200)}`);
  }
}

/**
 * CPU and memory of processes and of the machine, read from /proc, for the benchmarks (bench/farm.ts,
 * bench/modules.ts). Linux only; every figure is a counter or a gauge read at the call, never a sample.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's CPU times (USER_HZ, `getconf CLK_TCK`). */
export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** The fields of /proc/<pid>/stat after the command name: index 0 is field 3 (state). */
function statFields(text: string): string[] {
  return text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
}

/** CPU ticks a process has used (utime + stime), or null when it is gone. */
export function procTicks(pid: number): number | null {
  try {
    const f = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return Number(f[11]) + Number(f[12]); // fields 14 and 15
  } catch {
    return null;
  }
}

/** CPU ticks of the waited-for children (cutime + cstime) in a /proc/<pid>/stat line. */
export function childTicksOfStat(line: string): number {
  const f = statFields(line);
  return Number(f[13]) + Number(f[14]); // fields 16 and 17
}

/** The machine's busy and total CPU ticks since boot (/proc/stat; busy is all but idle and iowait). */
export function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - (f[4] ?? 0), total };
}

/** A `/proc/<pid>/status` size in MiB (`VmRSS`, `VmHWM`, …), or null when the process or the field is gone. */
export function statusMiB(pid: number, field: string): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

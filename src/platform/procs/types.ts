/**
 * ProcTable: this host's processes, for the `proc` checkers (src/checkers/proc.ts). Real: ./linux.ts (/proc);
 * fake: ./fake.ts.
 *
 * A process is identified by its pid AND its start time (`/proc/<pid>/stat` field 22, clock ticks since boot): a pid
 * reused by a new process has another start time, so it is never mistaken for the one that died.
 *
 * Contract:
 * - `list(wants)` enumerates the running processes whose comm passes `wants` (all when omitted), each with its
 *   command line. Zombies and processes that vanish during the scan are left out; a vanishing process never makes
 *   it fail. It rejects only when the table itself cannot be read.
 * - `watch(p)` returns a handle on one process; `alive()` is the cheap check, meant to run every poll: it resolves
 *   false once that process (same pid, same start time) has exited or is a zombie, and stays false after. It never
 *   rejects. `close()` releases the handle (idempotent); `alive()` after `close()` resolves false.
 * - Calls may overlap; each handle serialises its own checks.
 */
export interface ProcTable {
  list(wants?: (comm: string) => boolean): Promise<ProcInfo[]>;
  watch(p: ProcId): ProcWatch;
}

export interface ProcId {
  pid: number;
  /** `/proc/<pid>/stat` field 22: start time in clock ticks after boot */
  startTime: number;
}

export interface ProcInfo extends ProcId {
  /** the kernel's process name (`/proc/<pid>/stat` field 2, at most 15 characters) */
  comm: string;
  /** `/proc/<pid>/cmdline` split at NULs; empty for kernel threads */
  argv: string[];
}

export interface ProcWatch {
  alive(): Promise<boolean>;
  close(): void;
}

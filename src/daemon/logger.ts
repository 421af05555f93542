import fs from 'node:fs';
import path from 'node:path';

/**
 * Append-only line logger. Each line: ISO timestamp, level, text. `echo` also prints to stdout (the daemon runs in
 * the foreground under systemd or the lab).
 *
 * Contract:
 * - Writes are asynchronous and in order (one write(2) in flight at a time, lines queued behind it).
 * - Never throws and never emits an unhandled error, whatever the disk does: the daemon must outlive its own log.
 *   A failed open or write (ENOSPC, EDQUOT, EIO, EROFS, a deleted directory…) puts the logger in a failing state:
 *   lines are counted as lost, one notice goes to stderr (the journal under systemd) saying what failed and that the
 *   daemon keeps running, and after RETRY_MS the next line tries again (a fresh open); the first line that gets
 *   through says how many were lost, since when and why. `failure()` reports the current state.
 * - Memory is bounded: at most MAX_QUEUED_BYTES wait for the disk; beyond that, lines are counted as lost.
 * - The file is created with mode 0600 in a directory created 0700, and an existing file is set to 0600 when opened:
 *   logs hold script output and state details that other users must not read.
 */
export class Logger {
  static readonly RETRY_MS = 5000;
  static readonly MAX_QUEUED_BYTES = 1 << 20;
  private fd: number | null = null;
  private opening = false;
  private queue: string[] = [];
  private queuedBytes = 0;
  private writing = false;
  /** set while lines cannot be written; `probing`: a retry (reopen, then the lost-lines note) is under way */
  private failing: { since: Date; code: string; lost: number; retryAt: number; probing: boolean } | null = null;
  private closing: (() => void)[] | null = null;

  constructor(readonly file: string, private readonly echo: boolean, private readonly prefix = '', private readonly now: () => number = () => performance.now()) {
    guardStdio();
    this.open();
  }

  line(level: 'info' | 'warn' | 'error', msg: string) {
    const text = `${new Date().toISOString()} ${level.padEnd(5)} ${this.prefix}${msg}\n`;
    if (this.echo) {
      try {
        process.stdout.write(text);
      } catch {
        // stdout closed: the file is the log
      }
    }
    if (this.closing) return;
    const f = this.failing;
    if (f && !f.probing && this.now() < f.retryAt) {
      f.lost++;
      return;
    }
    if (f && !f.probing) {
      // time to try again: a fresh open, then a note of what was lost, then this line
      f.probing = true;
      if (this.fd !== null) fs.close(this.fd, ignore);
      this.fd = null;
      this.open();
      this.queue = [`${new Date().toISOString()} warn  ${this.prefix}${f.lost} log line(s) lost since ${f.since.toISOString()} (${f.code}); the daemon kept running\n`, text];
      this.queuedBytes = this.queue[0]!.length + text.length;
      return;
    }
    if (this.queuedBytes + text.length > Logger.MAX_QUEUED_BYTES) {
      this.fail(new Error(`more than ${Logger.MAX_QUEUED_BYTES} bytes of log lines waiting for the disk`), this.queue.length + 1, 'EBUSY');
      return;
    }
    this.queue.push(text);
    this.queuedBytes += text.length;
    this.pump();
  }

  info(msg: string) { this.line('info', msg); }
  warn(msg: string) { this.line('warn', msg); }
  error(msg: string) { this.line('error', msg); }

  /** null while the log is written; else since when and why it is not, and how many lines were lost. */
  failure(): { since: Date; code: string; lost: number } | null {
    return this.failing ? { since: this.failing.since, code: this.failing.code, lost: this.failing.lost } : null;
  }

  /** Resolves once every line written before it reached the file (or was counted lost), and the file is closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.closing ??= [];
      this.closing.push(resolve);
      this.maybeClosed();
    });
  }

  private open() {
    this.opening = true;
    const opened = (err: NodeJS.ErrnoException | null, fd: number | null) => {
      this.opening = false;
      if (err || fd === null) this.fail(err ?? new Error('no descriptor'), this.linesQueued());
      else this.fd = fd;
      this.pump();
    };
    fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 }, (mkErr) => {
      if (mkErr) return opened(mkErr, null);
      fs.open(this.file, 'a', 0o600, (err, fd) => {
        if (err) return opened(err, null);
        fs.fstat(fd, (stErr, st) => {
          // an older log file may be readable by others (never chmod what is not a regular file, e.g. /dev/null)
          if (!stErr && st.isFile() && (st.mode & 0o077) !== 0) fs.fchmod(fd, 0o600, () => opened(null, fd));
          else opened(null, fd);
        });
      });
    });
  }

  /** queued lines, not counting the lost-lines note of a probe */
  private linesQueued(): number {
    return this.failing?.probing ? Math.max(0, this.queue.length - 1) : this.queue.length;
  }

  private pump() {
    if (this.writing || this.fd === null || this.queue.length === 0 || (this.failing && !this.failing.probing)) {
      this.maybeClosed();
      return;
    }
    const lines = this.linesQueued();
    const probe = this.failing?.probing === true;
    const chunk = Buffer.from(this.queue.join(''), 'utf8');
    this.queue = [];
    this.queuedBytes = 0;
    this.writing = true;
    this.writeAll(this.fd, chunk, 0, (err) => {
      this.writing = false;
      if (err) this.fail(err, lines);
      else if (probe) this.failing = null;
      this.pump();
    });
  }

  private writeAll(fd: number, b: Buffer, off: number, done: (err: NodeJS.ErrnoException | null) => void) {
    fs.write(fd, b, off, b.length - off, null, (err, n) => {
      if (err) return done(err);
      if (off + n < b.length) return this.writeAll(fd, b, off + n, done);
      done(null);
    });
  }

  private fail(err: NodeJS.ErrnoException, lost: number, code = err.code ?? 'EIO') {
    this.queue = [];
    this.queuedBytes = 0;
    const retryAt = this.now() + Logger.RETRY_MS;
    if (this.failing) {
      // still failing (a retry did not get through): no new notice
      Object.assign(this.failing, { lost: this.failing.lost + lost, retryAt, probing: false });
      return;
    }
    this.failing = { since: new Date(), code, lost, retryAt, probing: false };
    try {
      process.stderr.write(`${new Date().toISOString()} error tandem: cannot write the log ${this.file} (${code}: ${err.message}); ` +
        `the daemon keeps running; log lines are lost until the log can be written again (retried every ${Logger.RETRY_MS / 1000} s)\n`);
    } catch {
      // nowhere left to say it
    }
  }

  private maybeClosed() {
    if (!this.closing || this.writing || this.opening || (this.queue.length > 0 && this.fd !== null && (!this.failing || this.failing.probing))) return;
    const waiters = this.closing.splice(0);
    const fd = this.fd;
    this.fd = null;
    const done = () => { for (const w of waiters) w(); };
    if (fd !== null) fs.close(fd, done);
    else done();
  }
}

function ignore(): void {}

let stdioGuarded = false;
/** EPIPE on stdout/stderr (the journal or the terminal went away) must not end the daemon. */
function guardStdio(): void {
  if (stdioGuarded) return;
  stdioGuarded = true;
  process.stdout.on('error', ignore);
  process.stderr.on('error', ignore);
}

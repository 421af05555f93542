import fs from 'node:fs';
import path from 'node:path';

/**
 * Append-only line logger. Each line: ISO timestamp, level, text. Writes are asynchronous and ordered; `echo`
 * also prints to stdout (the daemon runs in the foreground under systemd or the lab).
 */
export class Logger {
  private stream: fs.WriteStream;
  constructor(readonly file: string, private readonly echo: boolean, private readonly prefix = '') {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.stream = fs.createWriteStream(file, { flags: 'a' });
  }
  line(level: 'info' | 'warn' | 'error', msg: string) {
    const text = `${new Date().toISOString()} ${level.padEnd(5)} ${this.prefix}${msg}\n`;
    this.stream.write(text);
    if (this.echo) process.stdout.write(text);
  }
  info(msg: string) { this.line('info', msg); }
  warn(msg: string) { this.line('warn', msg); }
  error(msg: string) { this.line('error', msg); }
  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(resolve));
  }
}

import fs from 'node:fs/promises';
import { UserError } from '../errors.js';
import { homePaths, type Home } from '../home.js';

export async function tailLog(home: Home, module: string, lines: number): Promise<{ text: string; size: number }> {
  const file = homePaths.moduleLog(home, module);
  const buf = await fs.readFile(file).catch(() => {
    throw new UserError(`no log for module ${module} (${file}).`, `is it installed? \`tandem list\``);
  });
  const all = buf.toString('utf8').split('\n');
  if (all.at(-1) === '') all.pop();
  return { text: all.slice(-lines).map((l) => `${l}\n`).join(''), size: buf.length };
}

/** Print what is appended to the log after `from` bytes, until the process is interrupted. */
export async function followLog(home: Home, module: string, from: number, out: (chunk: string) => void): Promise<void> {
  const file = homePaths.moduleLog(home, module);
  let pos = from;
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    const st = await fs.stat(file).catch(() => null);
    if (!st) continue;
    if (st.size < pos) pos = 0;
    if (st.size === pos) continue;
    const fh = await fs.open(file, 'r');
    try {
      const b = Buffer.alloc(st.size - pos);
      await fh.read(b, 0, b.length, pos);
      pos = st.size;
      out(b.toString('utf8'));
    } finally {
      await fh.close();
    }
  }
}

/** One log line as `tandem log --json` prints it (a stable contract, README). */
export interface LogLineJson {
  module: string;
  /** the line's timestamp (ISO 8601) when it starts with one (the daemon's lines), else null (e.g. script output) */
  at: string | null;
  /** `info`, `warn`, `error`, … when the line has a timestamp, else null */
  level: string | null;
  /** the whole line as in the log file, without its newline */
  line: string;
}

const STAMPED = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (\w+)\s/;

export function logLineJson(module: string, line: string): LogLineJson {
  const m = STAMPED.exec(line);
  return { module, at: m ? m[1]! : null, level: m ? m[2]! : null, line };
}

/**
 * A converter of log text to JSON Lines for `module`: each complete line becomes one JSON object and a newline; a
 * partial last line is kept until the chunk that ends it (the log is read while it is written).
 */
export function jsonLines(module: string): (chunk: string) => string {
  let rest = '';
  return (chunk) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    return parts.map((l) => `${JSON.stringify(logLineJson(module, l))}\n`).join('');
  };
}

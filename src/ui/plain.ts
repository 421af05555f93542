import chalk from 'chalk';
import type { Line } from './model.js';

const paint = { red: chalk.red, orange: chalk.hex('#ff8c00'), green: chalk.green, gray: chalk.gray, cyan: chalk.cyan } as const;

/** A frame as text with ANSI colours when chalk's level allows them (none off a terminal or with NO_COLOR). */
export function frameAnsi(lines: Line[]): string {
  return lines.map((l) => l.map((s) => {
    let f = s.colour ? paint[s.colour] : chalk.reset;
    if (s.bold) f = f.bold;
    if (s.dim) f = f.dim;
    if (s.inverse) f = f.inverse;
    return s.text ? f(s.text) : '';
  }).join('').trimEnd()).join('\n');
}

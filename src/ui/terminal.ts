import chalk from 'chalk';

/** The variables by which Ink (is-in-ci) and chalk (supports-color) decide they run under a CI job. */
export const isCiVariable = (name: string) => name === 'CI' || name === 'CONTINUOUS_INTEGRATION' || name.startsWith('CI_');

/**
 * Prepares this process for the live view when stdin and stdout are a terminal, before Ink is imported. A person is
 * watching, even if the shell inherited a CI job's variables (a runner's ssh session, a test in a pty): with them Ink
 * writes only the last frame, at exit, and chalk no colour at all. So they are dropped from this process's
 * environment, and chalk's level is set again from the terminal's own colour depth, which still honours NO_COLOR,
 * FORCE_COLOR and TERM=dumb. Returns the names dropped.
 */
export function claimTerminal(env: NodeJS.ProcessEnv, colorDepth: (env: NodeJS.ProcessEnv) => number): string[] {
  const dropped = Object.keys(env).filter(isCiVariable);
  for (const k of dropped) delete env[k];
  const depth = colorDepth(env);
  chalk.level = depth >= 24 ? 3 : depth >= 8 ? 2 : depth >= 4 ? 1 : 0;
  return dropped;
}

import { controlRequest } from '../daemon/control.js';
import { homePaths, type Home } from '../home.js';

/** One request to the local daemon (throws UserError with how to start it when none runs). */
export function daemonRequest(home: Home, cmd: string, module?: string, args?: Record<string, unknown>, timeoutMs = 30_000): Promise<unknown> {
  return controlRequest(homePaths.controlSocket(home), cmd, module, args, { home: home.root, timeoutMs });
}

/** Like daemonRequest, but resolves null when no daemon runs (for commands that also work offline). */
export async function daemonRequestIfRunning(home: Home, cmd: string, module?: string, args?: Record<string, unknown>): Promise<unknown | null> {
  try {
    return await daemonRequest(home, cmd, module, args, 5000);
  } catch (e) {
    if (/no tandem daemon is running/.test((e as Error).message)) return null;
    throw e;
  }
}

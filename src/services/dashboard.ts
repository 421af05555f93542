import type { StatusView } from '../daemon/views.js';
import type { Home } from '../home.js';
import { daemonRequest } from './daemon-client.js';
import { adminModule } from './modules.js';
import type { Verb } from '../ui/model.js';

/**
 * What the dashboard needs of this node's daemon: its status (as `tandem status --json`, short timeout so a hung
 * daemon shows as an error within a poll or two) and the module commands (as `tandem swap|stop|start|prim|second`).
 */
export function dashboardSource(home: Home, module?: string) {
  return {
    status: async () => (await daemonRequest(home, 'status', module, undefined, 3000)) as StatusView,
    act: (verb: Verb, m: string) => adminModule(home, m, verb),
  };
}

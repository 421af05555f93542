import { switchCommand } from '../cli/switch-command.js';
import { listProcs } from '../services/resources.js';

export default switchCommand('errd', 'Suspend process monitoring of a module (maintenance), resume it, or list the monitored processes.',
  `off: the <errd> processes are no longer watched (their resources read init) until "on"; kept across daemon restarts.

list: each monitored process, its class, whether it is watched now, its state and the last detail.`,
  { arg: 'list', run: listProcs });

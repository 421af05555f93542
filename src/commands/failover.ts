import { switchCommand } from '../cli/switch-command.js';

export default switchCommand('failover', 'Turn automatic failover of a module off or on at run time.',
  `Off: a SECOND that loses its primary goes WAIT [failover-off] instead of taking over (as failover="off" in
userconfig.xml). Kept across daemon restarts; "on" restores automatic takeover.`);

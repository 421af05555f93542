import { adminCommand } from '../cli/admin-command.js';

export default adminCommand('stop', 'Stop a module on this node.',
  `Runs stop_prim (or stop_second), releases the virtual IP, runs poststop. Stopping the PRIM hands the application to
a ready SECOND (it becomes ALONE). The module stays stopped across reboots until \`tandem start\`.`);

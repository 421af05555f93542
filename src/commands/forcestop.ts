import { adminCommand } from '../cli/admin-command.js';

export default adminCommand('forcestop', 'Stop a module at once, even in the middle of a transition.',
  'Abandons the running transition and runs the stop scripts with "force" as first argument, releases the virtual IP.');

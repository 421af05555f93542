import { adminCommand } from '../cli/admin-command.js';

export default adminCommand('resetloop', 'Clear the count of automatic restarts of a module on this node.',
  `After more than maxloop automatic restarts within loop_interval (<service maxloop loop_interval>), a node hands the module
over and does not run it by itself; resetloop lets it run the module again (a waiting node takes it over if its peer
does not run it).`);

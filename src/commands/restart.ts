import { adminCommand } from '../cli/admin-command.js';

export default adminCommand('restart', "Restart a module's application in place (scripts only).",
  'On PRIM/ALONE runs stop_prim then start_prim; on SECOND stop_second then start_second. Roles do not change.');

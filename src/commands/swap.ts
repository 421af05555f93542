import { adminCommand } from '../cli/admin-command.js';

export default adminCommand('swap', 'Exchange the PRIM and SECOND roles.',
  'Needs PRIM and SECOND both ready; runs on either node. The PRIM stops the application and releases the virtual IP,\nthen the SECOND takes both.');

import { adminCommand } from '../cli/admin-command.js';

export default adminCommand('second', 'Make this node secondary: it copies the data of its peer.',
  'For a module in WAIT or STOP: joins as SECOND as soon as the peer is primary and reintegrates from it.', true);

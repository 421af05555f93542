import { adminCommand } from '../cli/admin-command.js';

export default adminCommand('start', 'Start a module on this node.',
  `Runs prestart, then looks for the peer for the heartbeat timeout and takes the role the data allows: SECOND behind a
running primary, ALONE when this node has the newest data, WAIT when it cannot know (first start, or after a general
power outage without syncdelta). The module is started again at every daemon start until \`tandem stop\`.`);

import { adminCommand } from '../cli/admin-command.js';

export default adminCommand('prim', "Make this node primary: its data becomes the reference.",
  `For a module in WAIT or STOP: goes ALONE with a new data generation; the peer then resyncs from this node. Use it on
the node with the good data at first start, or when the peer is lost for good. Refused while the peer runs the
application (use swap).`, true);

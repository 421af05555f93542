import { switchCommand } from '../cli/switch-command.js';

export default switchCommand('checker', 'Turn the checkers of a module off (maintenance) or on again.',
  `Off: tcp, ping, intf, ip, custom and module checkers stop and their resources read init, so no rule acts on them.
Process monitoring has its own switch (tandem errd). Kept across daemon restarts until turned on again.`);

import { Flags } from '@oclif/core';
import { TandemCommand } from '../../cli/base.js';
import { labUp } from '../../services/lab.js';
import { DEMO_PORT, DEMO_VIP } from '../../lab/mirror-lab.js';
import { paragraphs } from '../../cli/paragraphs.js';

export default class LabUp extends TandemCommand {
  static override summary = 'Build a two-node demo cluster in network namespaces on this machine (root).';
  static override description = paragraphs(`Creates hosts node1, node2, client and witness as network namespaces joined by the LANs "default"
(198.51.100.0/24) and "replication" (203.0.113.0/24), writes cluster.xml, a cluster key and the demo module (a web
server on port 8080 behind the virtual IP ${DEMO_VIP}) on both nodes, starts their daemons, and brings the module to
node1 PRIM / node2 SECOND. Tear it down with \`tandem lab down\`.`);
  static override examples = ['<%= config.bin %> lab up', '<%= config.bin %> lab up --pulse 200ms --timeout 1s --witness', '<%= config.bin %> lab up --lossy'];
  static override flags = {
    pulse: Flags.string({ description: 'heartbeat pulse', default: '500ms' }),
    timeout: Flags.string({ description: 'heartbeat timeout (failure detection)', default: '5s' }),
    witness: Flags.boolean({ description: 'configure the witness host as split-brain checker' }),
    syncdelta: Flags.string({ description: 'syncdelta (e.g. 10m)' }),
    replicate: Flags.boolean({ description: 'the demo keeps its request count in a replicated directory (/srv/demo/data)', default: true, allowNo: true }),
    lossy: Flags.boolean({ description: 'put each node\'s /srv/demo on a lossy disk: a power-off loses what was not synced (docs/design/lossy-disk.md)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(LabUp);
    const lab = await labUp({
      pulse: flags.pulse, timeout: flags.timeout, witness: flags.witness, replicate: flags.replicate,
      ...(flags.syncdelta ? { syncdelta: flags.syncdelta } : {}),
      ...(flags.lossy ? { spec: { lossyDisks: true } } : {}),
    }, (m) => this.log(m));
    this.log(`\nready: node1 PRIM, node2 SECOND; the client reaches http://${DEMO_VIP}:${DEMO_PORT}/ on node1.
${flags.replicate ? `The demo counts its requests in /srv/demo/data/hits, fsynced before each answer and replicated to node2:
after a failover the count goes on from where it was (the data moved with the service).
` : ''}
  watch it:        watch -n 0.5 tandem lab status
  dashboard:       tandem lab exec node2 -- tandem dashboard   (live view and keys, q quits; on node2 it stays up
                   while you power node1 off)
  client view:     tandem lab client            (one request every 200 ms; Ctrl-C to stop)
  fail it over:    tandem lab poweroff node1    (then: tandem lab boot node1 — it comes back as SECOND)
  other faults:    tandem lab cut default node2 · tandem lab cut all node2 · tandem lab heal
  run a command:   tandem lab exec node1 -- tandem status
  tear down:       tandem lab down              (lab ${lab.prefix})`);
  }
}

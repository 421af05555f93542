import { Daemon } from '../daemon/daemon.js';
import { TandemCommand } from '../cli/base.js';
import { paragraphs } from '../cli/paragraphs.js';

export default class DaemonCommand extends TandemCommand {
  static override summary = "Run this node's engine in the foreground (what a systemd unit runs).";
  static override description = paragraphs(`Loads cluster.xml, cluster.key and every installed module of TANDEM_HOME, sends and receives heartbeats, and
serves the CLI on $TANDEM_HOME/control.sock. Modules that were started before are started again (after a reboot) or
reattached (after a daemon restart: their application, and the replication host serving their replicated
directories, are left running). SIGTERM ends the daemon and leaves the modules' applications, virtual IPs and
replication hosts as they are; stop modules first for a clean handover.
TANDEM_METRICS=127.0.0.1:9464 serves Prometheus metrics on GET /metrics (loopback only unless
TANDEM_METRICS_ALLOW_REMOTE=1; README, "Metrics").`);
  static override examples = ['<%= config.bin %> daemon', 'TANDEM_HOME=/srv/node1 TANDEM_NODE=node1 <%= config.bin %> daemon',
    'TANDEM_METRICS=127.0.0.1:9464 <%= config.bin %> daemon'];

  async run(): Promise<void> {
    await this.parse(DaemonCommand);
    const d = await Daemon.start(this.home(), process.env);
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        d.log.info(`received ${sig}`);
        void d.shutdown().then(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  }
}

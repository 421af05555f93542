import { Flags } from '@oclif/core';
import { TandemCommand } from '../../cli/base.js';
import { generateKey, writeKeyFile } from '../../daemon/key.js';
import { homePaths } from '../../home.js';
import { paragraphs } from '../../cli/paragraphs.js';

export default class ClusterGenkey extends TandemCommand {
  static override summary = 'Create the cluster key ($TANDEM_HOME/cluster.key).';
  static override description = paragraphs(`Writes 32 random bytes (hex, mode 0600). Heartbeats are authenticated with it: copy the same file to every node
(e.g. scp -p), then restart their daemons. Refuses to replace an existing key unless --force.`);
  static override examples = ['<%= config.bin %> cluster genkey', '<%= config.bin %> cluster genkey --force && scp -p /var/lib/tandem/cluster.key node2:/var/lib/tandem/'];
  static override flags = { force: Flags.boolean({ description: 'replace an existing key (every node then needs the new file)' }) };

  async run(): Promise<void> {
    const { flags } = await this.parse(ClusterGenkey);
    const file = homePaths.clusterKey(this.home());
    await writeKeyFile(file, generateKey(), { force: flags.force });
    this.log(`wrote ${file}. Copy this same file to every node of the cluster (mode 0600).`);
  }
}

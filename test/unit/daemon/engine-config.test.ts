import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseClusterXml } from '../../../src/config/cluster.js';
import { parseUserconfig } from '../../../src/config/userconfig.js';
import { engineConfig, VIP_PROBE_AHEAD_MS } from '../../../src/daemon/module-driver.js';

// The engine's probe lead (EngineConfig.probeAheadMs) from userconfig.xml: the VIP probe's expected duration, at
// most half the heartbeat timeout; the engine itself skips it without a VIP or with a witness.

const CLUSTER = parseClusterXml(`<cluster><lans><lan name="default">
  <node name="node1" addr="198.51.100.1"/><node name="node2" addr="198.51.100.2"/>
</lan></lans></cluster>`);
const cfg = (timeout: string) => parseUserconfig(`<safe><service mode="mirror"><heart pulse="100ms" timeout="${timeout}"/>
<vip><interface_list><interface><real_interface><virtual_addr addr="198.51.100.10"/></real_interface></interface></interface_list></vip>
</service></safe>`, 'm', CLUSTER);

test('probeAheadMs is the VIP probe\'s expected duration', () => {
  assert.is(engineConfig(cfg('5s')).probeAheadMs, VIP_PROBE_AHEAD_MS);
});

test('probeAheadMs is at most half the heartbeat timeout', () => {
  assert.is(engineConfig(cfg('600ms')).probeAheadMs, 300);
});

test.run();

/**
 * The single binary's entry (scripts/build-binary.mjs generates `dist/binary/main.js`, which calls `runBinary`).
 * oclif finds commands by scanning dist/src/commands and reads package.json from disk; inside a bun-compiled binary
 * there is neither. So the build passes the package.json it read and an explicit command table generated from the
 * command directory (oclif 4's `explicit` discovery strategy), and the root plugin is given that table instead of
 * importing a target file from disk.
 */
import path from 'node:path';
import { Config, execute, Plugin, type Command, type Interfaces } from '@oclif/core';
import { runFanoutIfAsked } from './fanout.js';

/** command id (`lab:up`) → its class, for every file of src/commands */
export type CommandTable = Record<string, Command.Class>;

/** The strategy put in the binary's package.json: no file of it is read at run time (see `runBinary`). */
export const EXPLICIT_COMMANDS = { strategy: 'explicit', target: './commands.js', identifier: 'COMMANDS' } as const;

export async function runBinary(commands: CommandTable, pjson: Interfaces.PJSON): Promise<void> {
  // `tandem -H node1,node2 COMMAND…` (src/cli/fanout.ts), the same pre-parse as bin/tandem's
  const code = await runFanoutIfAsked(process.argv.slice(2), async (id) => commands[id]?.flags);
  if (code !== undefined) {
    process.exitCode = code;
    return;
  }
  const proto = Plugin.prototype as unknown as { loadCommandsFromTarget(this: Plugin): Promise<CommandTable | undefined> };
  const fromDisk = proto.loadCommandsFromTarget;
  proto.loadCommandsFromTarget = async function (this: Plugin) {
    return this.isRoot ? commands : fromDisk.call(this);
  };
  // oclif's user agent (`--version`, help's VERSION) names node's version; this binary runs on the bun runtime it was
  // compiled with, whose node emulation reports a node version that was never installed. oclif builds its Config
  // itself (it rebuilds one it is given), so the agent is set when a Config has loaded.
  const configProto = Config.prototype as unknown as { load(this: Config): Promise<void> };
  const load = configProto.load;
  configProto.load = async function (this: Config) {
    await load.call(this);
    this.userAgent = binaryUserAgent(this, (globalThis as { Bun?: { version: string } }).Bun?.version);
  };
  const root = path.dirname(process.execPath);
  await execute({
    loadOptions: { root, pjson: { ...pjson, oclif: { ...pjson.oclif, commands: EXPLICIT_COMMANDS } } },
  });
}

/** `tandem/0.1.0 linux-x64 bun-1.2.3 (single binary)`: what `tandem --version` prints from the binary. */
export function binaryUserAgent(c: { name: string; version: string; platform: string; arch: string }, bunVersion: string | undefined): string {
  return `${c.name}/${c.version} ${c.platform}-${c.arch} ${bunVersion ? `bun-${bunVersion}` : `node-${process.version}`} (single binary)`;
}

#!/usr/bin/env node
// Writes completions/tandem.bash, completions/_tandem and completions/tandem.fish from the command manifest of the
// built CLI (dist/, run after `tsc`; scripts/setup.sh does). The same text as `tandem completion bash|zsh|fish`.
// The files are build outputs (not in git), so they can never lag behind the commands.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Config } from '@oclif/core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { completionScript, specFromConfig } = await import(path.join(root, 'dist/src/cli/completion.js'));
const config = await Config.load(root);
const spec = specFromConfig(config);
const out = path.join(root, 'completions');
fs.mkdirSync(out, { recursive: true });
for (const [shell, file] of [['bash', 'tandem.bash'], ['zsh', '_tandem'], ['fish', 'tandem.fish']]) {
  fs.writeFileSync(path.join(out, file), completionScript(shell, spec, config.bin));
  console.log(`completions: wrote ${path.join('completions', file)}`);
}

import type { ScriptName, ScriptRequest, ScriptResult, ScriptRunner } from './types.js';

/**
 * ScriptRunner for unit tests. Records every request in `requests`, in call order, at the moment `run` is called.
 * Each script returns its programmed result (`setResult`), else success `{ ok: true, code: 0 }`; a partial result
 * is completed from that default. With `delayMs` the result comes after that many milliseconds of a real timer
 * (leave it 0, the default, in tests that must not sleep).
 */
export class FakeScriptRunner implements ScriptRunner {
  readonly requests: ScriptRequest[] = [];
  delayMs: number;
  private readonly results = new Map<ScriptName, Partial<ScriptResult>>();

  constructor(opts: { delayMs?: number } = {}) {
    this.delayMs = opts.delayMs ?? 0;
  }

  setResult(script: ScriptName, result: Partial<ScriptResult>): void {
    this.results.set(script, result);
  }

  /** the script names run so far, in order */
  get scripts(): ScriptName[] {
    return this.requests.map((r) => r.script);
  }

  async run(req: ScriptRequest): Promise<ScriptResult> {
    this.requests.push(req);
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    const r = this.results.get(req.script) ?? {};
    const ok = r.ok ?? true;
    return {
      ok,
      missing: r.missing ?? false,
      timedOut: r.timedOut ?? false,
      code: r.code !== undefined ? r.code : ok ? 0 : 1,
      durationMs: r.durationMs ?? this.delayMs,
    };
  }
}

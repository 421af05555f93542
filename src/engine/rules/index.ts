/** Failover rules (SafeKit's `<failover>` language), pure: parse, defaults and merge, evaluate, handle_time. */
export * from './types.js';
export { parseRules, type TextStart } from './parse.js';
export { defaultRules, mergeRules, moduleRules } from './defaults.js';
export { evaluate, holding } from './evaluate.js';
export { hold, type HoldState } from './hold.js';
export { formatExpr, formatRef, formatRule } from './format.js';

// The iptables ruleset of a snapshot as an evaluator the rules can ask.
import type { NetfilterEvaluator } from '../explain/types.js';
import type { Snapshot } from './snapshot.js';

export function netfilterEvaluator(_snap: Snapshot): NetfilterEvaluator | undefined {
  return undefined; // wired to src/state/iptables.ts when it lands
}

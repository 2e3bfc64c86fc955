// Which drop reasons of this kernel netwhy can explain: every name the
// kernel's BTF defines, the rules that claim it, and what the kernel means by it.
import { reasonMeaning } from '../model/drop-reasons.js';
import { RULES, WEAK_REASONS } from './explain.js';
import type { ExplainRule } from './types.js';

export interface ReasonCoverage {
  value: number;
  name: string;
  /** The kernel's meaning, in short words; null when netwhy does not know the name. */
  meaning: string | null;
  /** The rules that can explain it, in the order they are tried; [] = no rule yet. */
  rules: string[];
  /** A free that is not a loss of the traced packet, or too vague to blame alone. */
  weak: boolean;
}

export function reasonCoverage(reasons: Map<number, string>, rules: ExplainRule[] = RULES): ReasonCoverage[] {
  return [...reasons]
    .sort((a, b) => a[0] - b[0])
    .map(([value, name]) => ({
      value,
      name,
      meaning: reasonMeaning(name) ?? null,
      rules: rules.filter((r) => r.reasons.includes(name)).map((r) => r.name),
      weak: WEAK_REASONS.has(name),
    }));
}

export function coverageCounts(c: ReasonCoverage[]): { explained: number; defined: number } {
  return { explained: c.filter((r) => r.rules.length > 0).length, defined: c.length };
}

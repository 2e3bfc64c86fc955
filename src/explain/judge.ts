// Flows to verdicts: the one step every command shares after the pipeline.
// Apart from it so that a live trace loads the rules only when it first judges.
import { type FlowDoc, flowDoc } from './document.js';
import { type ExplainDeps, isNoise } from './explain.js';
import type { Flow } from './flows.js';

/** The flows worth a verdict, as documents (a flow of weak frees only is noise). */
export function judgeFlows(flows: Flow[], deps: ExplainDeps, exitCode?: number): { flow: Flow; doc: FlowDoc }[] {
  return flows.filter((f) => !isNoise(f, deps.reasonName)).map((f) => ({ flow: f, doc: flowDoc(f, deps, exitCode) }));
}

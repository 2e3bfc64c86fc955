// Verdicts while tracing: flows are built from finished journeys and handed
// out once nothing has happened on them for a while.
import type { Journey } from '../journey.js';
import { buildFlows, type Flow } from './flows.js';

export class LiveFlows {
  private pending: Journey[] = [];

  constructor(private readonly idleNs = 2e9) {}

  add(journeys: Journey[]): void {
    for (const j of journeys) if (j.keys.size) this.pending.push(j);
  }

  /** Flows idle since before nowNs - idle; their journeys leave the buffer. */
  due(nowNs: number): Flow[] {
    const flows = buildFlows(this.pending);
    const done = flows.filter((f) => nowNs - f.end > this.idleNs);
    const gone = new Set(done.flatMap((f) => f.journeys));
    this.pending = this.pending.filter((j) => !gone.has(j));
    return done;
  }

  /** End of trace: every flow is due. */
  flush(): Flow[] {
    const flows = buildFlows(this.pending);
    this.pending = [];
    return flows;
  }
}

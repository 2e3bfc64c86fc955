// Verdicts while tracing: flows are built from finished journeys and handed
// out once nothing has happened on them for a while.
import type { Journey } from '../journey.js';
import { buildFlows, type Flow } from './flows.js';

export class LiveFlows {
  private pending: Journey[] = [];

  /**
   * idleNs: a flow quiet this long gets its verdict. maxAgeNs: one that never
   * goes quiet gets one anyway (what follows starts a new flow). maxPending:
   * journeys held at most; past it the oldest flows are judged early, so a
   * storm cannot grow memory without bound.
   */
  constructor(
    private readonly idleNs = 2e9,
    private readonly maxAgeNs = 10e9,
    private readonly maxPending = 2_000,
    /** How journeys become flows: the pipeline's, which knows the trace's IPVS connections. */
    private readonly build: (journeys: Journey[]) => Flow[] = (j) => buildFlows(j),
  ) {}

  add(journeys: Journey[]): void {
    for (const j of journeys) if (j.keys.size) this.pending.push(j);
  }

  /** More journeys held than maxPending: call due() now rather than at the next tick. */
  get crowded(): boolean {
    return this.pending.length > this.maxPending;
  }

  /** Flows idle (or old) at nowNs; their journeys leave the buffer. */
  due(nowNs: number): Flow[] {
    const flows = this.build(this.pending);
    const oldest = this.crowded ? [...flows].sort((a, b) => a.start - b.start)[Math.floor(flows.length / 2)]?.start ?? 0 : -Infinity;
    const done = flows.filter((f) => nowNs - f.end > this.idleNs || nowNs - f.start > this.maxAgeNs || f.start <= oldest);
    const gone = new Set(done.flatMap((f) => f.journeys));
    this.pending = this.pending.filter((j) => !gone.has(j));
    return done;
  }

  /** End of trace: every flow is due. */
  flush(): Flow[] {
    const flows = this.build(this.pending);
    this.pending = [];
    return flows;
  }
}

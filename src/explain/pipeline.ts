// The pipeline every command runs, assembled once: records → journeys (one
// skb's path) → flows (journeys joined by conntrack and IPVS tuples); then
// judge.ts makes flow documents with their verdicts. `trace` feeds it live,
// `explain` (and so `lab run`) with a whole capture; both judge flows the same way.
import type { IpvsRecord, LostRecord, NwRecord } from '../abi.js';
import { isIpvs } from '../abi.js';
import { type Journey, JourneyBuilder } from '../journey.js';
import { buildFlows, type Flow } from './flows.js';

export class FlowPipeline {
  private readonly journeys: JourneyBuilder;
  /** IPVS events seen: new connections tie a client's journeys to the real server's. */
  readonly ipvs: IpvsRecord[] = [];
  /** When events were lost (ring buffer full): a verdict must know whether its flow was traced meanwhile. */
  readonly losses: LostRecord[] = [];

  /** idleNs: a journey idle this long is finished (a whole capture: generous; live: short). */
  constructor(idleNs?: number) {
    this.journeys = new JourneyBuilder({ idleNs });
  }

  /** Feed one record; returns the journey number it joined (0 for IPVS records). */
  add(r: NwRecord): number {
    if (r.kind === 'lost') {
      this.losses.push(r);
      return 0;
    }
    if (isIpvs(r)) {
      this.ipvs.push(r);
      return 0;
    }
    return this.journeys.add(r).id;
  }

  /** Live: IPVS and loss records before ts can no longer touch a flow still held; let them go. */
  forgetBefore(ts: number): void {
    for (const list of [this.ipvs, this.losses] as { ts: number }[][]) {
      let n = 0;
      while (n < list.length && list[n].ts < ts) n++;
      if (n) list.splice(0, n);
    }
  }

  /** Journeys finished since the last call, and live ones idle at nowNs. */
  takeFinished(nowNs: number): Journey[] {
    return this.journeys.takeFinished(nowNs);
  }

  /** End of input: every journey is finished. */
  flushJourneys(): Journey[] {
    return this.journeys.flush();
  }

  /** End of input, as flows. */
  flush(): Flow[] {
    return this.flows(this.journeys.flush());
  }

  flows(journeys: Journey[]): Flow[] {
    return buildFlows(journeys, this.ipvs);
  }
}

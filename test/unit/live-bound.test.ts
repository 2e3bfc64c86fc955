// The per-flow bound of live verdicts (LiveFlows): a flow of many packets is
// held as its first, its latest and each new kind of drop, the rest counted.
// Its verdict must be the one the whole flow gets: recordings of two
// different failures, each repeated as retransmissions, are judged both ways.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type NwRecord, decodeBatch, isIpvs } from '../../src/abi.js';
import { captureDeps } from '../../src/explain/capture.js';
import { KEEP_FIRST, KEEP_LATEST, KEEP_NEW_DROPS, LiveFlows } from '../../src/explain/live.js';
import { judgeFlows } from '../../src/explain/judge.js';
import { FlowPipeline } from '../../src/explain/pipeline.js';
import { type Capture, decodeCapture } from '../../src/recording.js';

const load = (name: string) => decodeCapture(readFileSync(resolve(__dirname, `../fixtures/recordings/${name}.nwrec`)));

/** The capture's packets sent again n times, 1 ms apart, each time in new skbs: retransmissions of the same flows. */
function repeated(c: Capture, n: number): NwRecord[] {
  const recs = decodeBatch(c.records).records.filter((r) => r.kind !== 'lost' && !isIpvs(r));
  const out: NwRecord[] = [];
  for (let k = 0; k < n; k++) {
    const dt = k * 1e6;
    const skb = k * 0x10000000;
    for (const r of recs) {
      if (r.kind === 'fib') out.push({ ...r, ts: r.ts + dt, skb: r.skb && r.skb + skb });
      else if (r.kind === 'sock') out.push({ ...r, ts: r.ts + dt });
      else if ('pkt' in r) out.push({ ...r, ts: r.ts + dt, pkt: { ...r.pkt, skb: r.pkt.skb + skb } } as NwRecord);
    }
  }
  return out;
}

function bothWays(name: string, n: number) {
  const c = load(name);
  const records = repeated(c, n);
  // Unbounded: every journey of the flow, as explain holds them.
  const whole = new FlowPipeline(5e9);
  for (const r of records) whole.add(r);
  const wholeFlows = whole.flush();
  // Bounded: the same journeys through LiveFlows, in batches as a live trace hands them over.
  const live = new FlowPipeline(5e9);
  const held = new LiveFlows(2e9, 60e9, 1e9, (j) => live.flows(j));
  let most = 0;
  for (let i = 0; i < records.length; i += 50) {
    for (const r of records.slice(i, i + 50)) live.add(r);
    held.add(live.takeFinished(records[Math.min(i + 49, records.length - 1)].ts));
    most = Math.max(most, held.pending);
  }
  held.add(live.flushJourneys());
  const liveFlows = held.flush();
  return {
    whole: judgeFlows(wholeFlows, captureDeps(c, whole)).map((j) => j.doc),
    live: judgeFlows(liveFlows, captureDeps(c, live)).map((j) => j.doc),
    liveFlows,
    most,
  };
}

describe('live verdicts hold a bounded sample of each flow', () => {
  for (const name of ['no-socket', 'iptables-reject']) {
    it(`${name} ×300: the bounded flow gets the whole flow's verdict, retransmission count included, holding at most first + latest + new kinds`, () => {
      const { whole, live, liveFlows, most } = bothWays(name, 300);
      const drops = (d: typeof whole) => d.filter((f) => f.verdict.outcome === 'dropped');
      expect(drops(whole).length).toBeGreaterThan(0);
      expect(live.map((d) => d.verdict)).toEqual(whole.map((d) => d.verdict));
      expect(drops(live)[0].verdict.evidence.join('\n')).toMatch(/\b300 packets of this flow were dropped the same way/);
      // what was shed is counted, as hops not kept
      const shed = liveFlows.reduce((n, f) => n + (f.shed?.journeys ?? 0), 0);
      expect(shed).toBeGreaterThan(0);
      const omitted = (d: typeof whole) => d.reduce((n, f) => n + f.hops.length + (f.hopsOmitted ?? 0), 0);
      expect(omitted(live)).toBe(omitted(whole));
      // held per flow key: first + new kinds + latest
      expect(most).toBeLessThanOrEqual(liveFlows.length * 3 * (KEEP_FIRST + KEEP_NEW_DROPS + KEEP_LATEST));
      for (const f of liveFlows) expect(f.journeys.length).toBeLessThan(300);
    });
  }
});

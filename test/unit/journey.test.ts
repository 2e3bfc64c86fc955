// Journeys (records of one skb) and flows (journeys joined across NAT).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type NwRecord, type PathRecord, type Pkt, PktFlag, decodeBatch } from '../../src/abi.js';
import { MAX_HOPS, flowDoc } from '../../src/explain/document.js';
import type { ExplainDeps } from '../../src/explain/explain.js';
import { buildFlows } from '../../src/explain/flows.js';
import { LiveFlows } from '../../src/explain/live.js';
import { type Journey, JourneyBuilder, MAX_JOURNEY_RECORDS, flowKey } from '../../src/journey.js';
import { decodeCapture } from '../../src/recording.js';
import { expectValid } from '../helpers/schema.js';

const recorded = (name: string) => decodeBatch(decodeCapture(readFileSync(resolve(__dirname, `../fixtures/recordings/${name}.nwrec`))).records).records;

function pkt(skb: number, src: string, sport: number, dst: string, dport: number, extra: Partial<Pkt> = {}): Pkt {
  return {
    skb, netns: 1, ifindex: 2, dev: 'eth0', tuple: { family: 2, proto: 6, src, sport, dst, dport },
    ctStatus: 0, mark: 0, len: 60, pid: 0, flags: PktFlag.HAS_L4, tcpFlags: 0, ...extra,
  };
}
const rec = (kind: 'rx' | 'tx', ts: number, p: Pkt): PathRecord => ({ kind, ts, cpu: 0, probe: 1, pkt: p });

describe('journeys', () => {
  it('one skb crossing a veth is one journey: tx in one namespace, rx in the next', () => {
    const b = new JourneyBuilder();
    const j1 = b.add(rec('tx', 1, pkt(100, '10.0.0.1', 1000, '10.0.0.2', 80)));
    const j2 = b.add(rec('rx', 2, { ...pkt(100, '10.0.0.1', 1000, '10.0.0.2', 80), netns: 2 }));
    expect(j2).toBe(j1);
    expect(j1.records.map((r) => r.kind)).toEqual(['tx', 'rx']);
  });

  it('a reused skb address carrying another flow starts a new journey', () => {
    const b = new JourneyBuilder();
    const a = b.add(rec('tx', 1, pkt(100, '10.0.0.1', 1000, '10.0.0.2', 80)));
    const c = b.add(rec('tx', 2, pkt(100, '10.0.0.9', 5000, '10.0.0.2', 53)));
    expect(c).not.toBe(a);
    expect(b.takeFinished(3)).toContain(a);
  });

  it('an idle gap ends a journey, and so does a drop', () => {
    const b = new JourneyBuilder({ idleNs: 1000 });
    const a = b.add(rec('tx', 1, pkt(100, '10.0.0.1', 1000, '10.0.0.2', 80)));
    const later = b.add(rec('rx', 5000, pkt(100, '10.0.0.1', 1000, '10.0.0.2', 80)));
    expect(later).not.toBe(a);
    const drop: NwRecord = { kind: 'drop', ts: 5001, cpu: 0, probe: 0, pkt: pkt(100, '10.0.0.1', 1000, '10.0.0.2', 80), location: 0n, reason: 2, stack: [] };
    expect(b.add(drop)).toBe(later);
    expect(later.ended).toBe(true);
  });

  it('the flow key is the same in both directions', () => {
    const t = { family: 2, proto: 17, src: '10.0.0.1', sport: 5353, dst: '10.96.0.10', dport: 53 };
    expect(flowKey(t)).toBe(flowKey({ ...t, src: t.dst, sport: t.dport, dst: t.src, dport: t.sport }));
  });

  it('a recorded exchange groups into journeys that each stay on one skb', () => {
    const b = new JourneyBuilder();
    for (const r of recorded('delivered')) b.add(r);
    const js = b.flush();
    expect(js.length).toBeGreaterThan(3);
    for (const j of js) {
      const skbs = new Set(j.records.flatMap((r) => (r.kind === 'fib' ? [] : [r.pkt.skb])));
      expect(skbs.size).toBeLessThanOrEqual(1);
    }
  });
});

describe('flows', () => {
  it('a DNAT-ed request and its reply are one flow, joined by the conntrack tuples', () => {
    const ct = { ctOrig: { family: 2, proto: 6, src: '10.0.0.1', sport: 1000, dst: '192.168.0.11', dport: 30080 }, ctReply: { family: 2, proto: 6, src: '10.244.2.2', sport: 80, dst: '10.0.0.1', dport: 1000 } };
    const b = new JourneyBuilder();
    b.add(rec('tx', 1, pkt(1, '10.0.0.1', 1000, '192.168.0.11', 30080, { flags: PktFlag.HAS_L4 | PktFlag.LOCAL_SK })));
    b.add(rec('tx', 2, pkt(2, '10.0.0.1', 1000, '10.244.2.2', 80, { ...ct, flags: PktFlag.HAS_L4 | PktFlag.HAS_CT | PktFlag.CT_DNAT })));
    b.add(rec('rx', 3, pkt(3, '10.244.2.2', 80, '10.0.0.1', 1000, { netns: 3 })));
    const flows = buildFlows(b.flush());
    expect(flows).toHaveLength(1);
    expect(flows[0].orig).toMatchObject({ dst: '192.168.0.11', dport: 30080 });
    expect(flows[0].nat).toEqual([expect.objectContaining({ kind: 'dnat', to: { addr: '10.244.2.2', port: 80 } })]);
  });

  it('an skb address reused by packet after packet of one flow starts a new journey every MAX_JOURNEY_RECORDS records', () => {
    const b = new JourneyBuilder();
    const seen = new Set<Journey>();
    for (let i = 0; i < 1000; i++) seen.add(b.add(rec(i % 2 ? 'rx' : 'tx', i, pkt(7, '10.0.0.1', 1000, '10.0.0.2', 80))));
    expect(seen.size).toBe(Math.ceil(1000 / MAX_JOURNEY_RECORDS));
    for (const j of seen) expect(j.records.length).toBeLessThanOrEqual(MAX_JOURNEY_RECORDS);
  });

  it('past maxLive unfinished journeys the oldest is finished (its drop may never come: lost)', () => {
    const b = new JourneyBuilder({ maxLive: 3 });
    const js = [1, 2, 3, 4, 5].map((i) => b.add(rec('tx', i, pkt(i, '10.0.0.1', 1000 + i, '10.0.0.2', 80))));
    expect(js.map((j) => j.ended)).toEqual([true, true, false, false, false]);
    expect(b.takeFinished(6)).toEqual([js[0], js[1]]);
  });

  it('idle journeys are finished behind one that started earlier and is still active', () => {
    const b = new JourneyBuilder({ idleNs: 10 });
    const busy = b.add(rec('tx', 0, pkt(1, '10.0.0.1', 1000, '10.0.0.2', 80)));
    const quiet = b.add(rec('tx', 1, pkt(2, '10.0.0.1', 1001, '10.0.0.2', 80)));
    const young = b.add(rec('tx', 15, pkt(3, '10.0.0.1', 1002, '10.0.0.2', 80)));
    b.add(rec('rx', 8, { ...pkt(1, '10.0.0.1', 1000, '10.0.0.2', 80), netns: 2 }));
    b.add(rec('tx', 16, { ...pkt(1, '10.0.0.1', 1000, '10.0.0.2', 80), netns: 2 }));
    expect(b.takeFinished(20)).toEqual([quiet]);
    expect([busy.ended, young.ended]).toEqual([false, false]);
    expect(b.takeFinished(40)).toEqual([busy, young]);
  });

  it('live: a flow is handed out once idle, and only once', () => {
    const b = new JourneyBuilder({ idleNs: 10 });
    b.add(rec('tx', 1, pkt(1, '10.0.0.1', 1000, '10.0.0.2', 80)));
    const live = new LiveFlows(100);
    live.add(b.takeFinished(50));
    expect(live.due(50)).toHaveLength(0);
    expect(live.due(500)).toHaveLength(1);
    expect(live.due(900)).toHaveLength(0);
  });
});

describe('flow documents', () => {
  const deps: ExplainDeps = {
    state: () => undefined,
    ipvs: [],
    netnsName: (i) => `ns${i}`,
    reasonName: (v) => `reason${v}`,
    func: () => undefined,
    symbol: (a) => `0x${a.toString(16)}`,
  };

  it('a flow of many packets lists its first hops and its last, and says how many it left out', () => {
    const b = new JourneyBuilder();
    for (let i = 0; i < 600; i++) {
      b.add(rec('tx', i * 10, pkt(1000 + i, '10.0.0.1', 1000, '10.0.0.2', 80)));
      b.add(rec('rx', i * 10 + 1, { ...pkt(1000 + i, '10.0.0.1', 1000, '10.0.0.2', 80), netns: 2 }));
    }
    b.add({ kind: 'drop', ts: 9000, cpu: 0, probe: 0, pkt: { ...pkt(5000, '10.0.0.1', 1000, '10.0.0.2', 80), netns: 2 }, location: 0n, reason: 2, stack: [] });
    const [flow] = buildFlows(b.flush());
    const doc = flowDoc(flow, deps);
    expectValid('trace-line', { type: 'flow', ...doc }); // as trace --json prints a verdict
    expect(doc.hops).toHaveLength(MAX_HOPS);
    expect(doc.hopsOmitted).toBe(1201 - MAX_HOPS);
    expect(doc.hops.at(-1)).toMatchObject({ netns: 'ns2', what: 'drop reason2' });
    expect(doc.hops.slice(0, 2).map((h) => h.what)).toEqual(['tx', 'rx']);
  });

  it('a short flow lists every hop and omits nothing', () => {
    const b = new JourneyBuilder();
    b.add(rec('tx', 1, pkt(7, '10.0.0.1', 1000, '10.0.0.2', 80)));
    b.add(rec('rx', 2, { ...pkt(7, '10.0.0.1', 1000, '10.0.0.2', 80), netns: 2 }));
    const doc = flowDoc(buildFlows(b.flush())[0], deps);
    expectValid('trace-line', { type: 'flow', ...doc });
    expect(doc.hops).toHaveLength(2);
    expect(doc).not.toHaveProperty('hopsOmitted');
  });
});

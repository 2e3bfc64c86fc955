// LiveJudge, the live verdicts trace and agent share, fed recorded records: it
// judges every flow at the end as explain does (outcome, where), and past
// its queue bound hands flows to onShed instead of holding them.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type NwRecord, decodeBatch } from '../../src/abi.js';
import { explainCapture } from '../../src/explain/capture.js';
import { type Judged, LiveJudge } from '../../src/explain/live-judge.js';
import type { Flow } from '../../src/explain/flows.js';
import { NetnsNames } from '../../src/kernel/netns.js';
import { decodeCapture } from '../../src/recording.js';

const DIR = resolve(__dirname, '../fixtures/recordings');
const load = (name: string) => decodeCapture(readFileSync(`${DIR}/${name}.nwrec`));
const RECORDINGS = ['no-socket', 'ip-forward-off', 'iptables-reject'];

function judge(opts: { maxQueued?: number } = {}) {
  const judged: Judged[] = [];
  const shed: Flow[] = [];
  const captures = RECORDINGS.map(load);
  const netns = new NetnsNames('/nonexistent'); // recorded inodes name nothing here: no snapshot is taken
  const j = new LiveJudge({
    netns,
    reasonName: (v) => captures[0].dropReasons.find(([n]) => n === v)?.[1] ?? `reason#${v}`,
    func: () => undefined,
    symbol: (a) => `0x${a.toString(16)}`,
    onJudged: (x) => void judged.push(...x),
    ...(opts.maxQueued !== undefined ? { maxQueued: opts.maxQueued, onShed: (f: Flow[]) => void shed.push(...f) } : {}),
  });
  // Each recording's records in turn, with its own time base moved past the previous one's.
  let base = 0;
  for (const c of captures) {
    const recs: NwRecord[] = decodeBatch(c.records).records;
    const t0 = recs[0].ts;
    for (const r of recs) j.add({ ...r, ts: r.ts - t0 + base } as NwRecord);
    base += recs[recs.length - 1].ts - t0 + 60e9;
    j.batchDone(base);
  }
  return { j, judged, shed, captures };
}

describe('LiveJudge', () => {
  it('finish() judges every open flow; those explain calls dropped are dropped live, where explain puts the drop', async () => {
    const { j, judged, captures } = judge();
    expect(await j.finish(100)).toEqual([]);
    const key = (o: { src: string; sport?: number; dst: string; dport?: number }) => `${o.src}:${o.sport} > ${o.dst}:${o.dport}`;
    const batch = new Map(captures.flatMap((c) => explainCapture(c).flows).map((f) => [key(f.orig), f.verdict]));
    expect(judged.map((x) => key(x.doc.orig)).sort()).toEqual([...batch.keys()].sort());
    const dropped = judged.filter((x) => x.doc.verdict.outcome === 'dropped');
    // every flow explain calls dropped is dropped live too, without the command's exit status
    // (a refused connection's RST is no delivery), at the same device with the same reason
    // (namespaces are inodes and functions addresses here: the recording's names are not this machine's)
    expect(dropped.map((x) => key(x.doc.orig)).sort()).toEqual([...batch].filter(([, v]) => v.outcome === 'dropped').map(([k]) => k).sort());
    expect(dropped.map((x) => x.doc.verdict.where?.reason)).toContain('NO_SOCKET');
    const at = (w: { dev: string; reason: string } | undefined) => w && { dev: w.dev, reason: w.reason };
    for (const x of dropped) expect(at(x.doc.verdict.where)).toEqual(at(batch.get(key(x.doc.orig))!.where));
  });

  it('finish(max) judges only the last max open flows and returns the others', async () => {
    const { j, judged } = judge();
    const left = await j.finish(1);
    expect(left.length).toBeGreaterThanOrEqual(2);
    expect(judged.length).toBeLessThanOrEqual(1);
  });

  it('with maxQueued, flows past the queue go to onShed, none is both judged and shed, none is lost', async () => {
    const all = judge();
    await all.j.finish(100);
    const { j, judged, shed } = judge({ maxQueued: 1 });
    await j.finish(100);
    expect(shed.length).toBeGreaterThan(0);
    expect(judged.length).toBeLessThanOrEqual(1);
    const ids = new Set(judged.map((x) => x.flow));
    expect(shed.some((f) => ids.has(f))).toBe(false);
    // every flow is accounted for: judged (noise is not judged), or shed
    expect(judged.length + shed.length).toBeGreaterThanOrEqual(all.judged.length);
  });
});

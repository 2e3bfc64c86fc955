// Honest when incomplete: a flow traced while events were lost says so, and
// concludes no cause the lost events could change (docs/json.md).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ABI_VERSION, LAYOUT, RecordType, decodeBatch } from '../../src/abi.js';
import { explainCapture } from '../../src/explain/capture.js';
import { decodeCapture, type Capture } from '../../src/recording.js';
import { expectValid } from '../helpers/schema.js';

const DIR = resolve(__dirname, '../fixtures/recordings');
const load = (name: string) => decodeCapture(readFileSync(`${DIR}/${name}.nwrec`));

function lostRecord(ts: number, count: number, first: number, last: number): Uint8Array {
  const L = LAYOUT.nw_lost;
  const rec = new Uint8Array(L.size);
  const dv = new DataView(rec.buffer);
  rec[0] = ABI_VERSION;
  rec[1] = RecordType.LOST;
  dv.setUint16(2, L.size, true);
  dv.setBigUint64(LAYOUT.nw_hdr.ts, BigInt(ts), true);
  dv.setBigUint64(L.count, BigInt(count), true);
  dv.setBigUint64(L.first_ts, BigInt(first), true);
  dv.setBigUint64(L.last_ts, BigInt(last), true);
  return rec;
}

/** The capture with a loss of `count` events between first and last (ns since boot). */
function withLoss(c: Capture, count: number, first: number, last: number, unplaced = 0): Capture {
  return { ...c, lost: c.lost + count + unplaced, records: Buffer.concat([c.records, lostRecord(last + 1, count, first, last)]) };
}

const span = (c: Capture) => {
  const ts = decodeBatch(c.records).records.map((r) => r.ts);
  return { first: Math.min(...ts), last: Math.max(...ts) };
};

describe('trace incomplete', () => {
  it('a lost record decodes with its count and window', () => {
    const [r] = decodeBatch(lostRecord(10, 7, 3, 9)).records;
    expect(r).toMatchObject({ kind: 'lost', ts: 10, count: 7, first: 3, last: 9 });
  });

  it('events lost while a failed flow was traced: the drop seen stays the where, no cause is concluded', () => {
    const c = load('no-socket');
    const { first, last } = span(c);
    const doc = expectValid('explain', explainCapture(withLoss(c, 5, first + 1, last)));
    const v = doc.flows[0].verdict;
    expect(v.outcome).toBe('dropped');
    expect(v.where?.reason).toBe('NO_SOCKET');
    expect(v.cause).toMatchObject({ type: 'unknown', ref: 'trace incomplete' });
    expect(v.evidence[0]).toMatch(/^trace incomplete: 5 events lost while this flow was traced/);
    expect(v.evidence[1]).toBe('the events seen point to socket tcp 10.199.2.2:81 = no listener (nwr-server)');
  });

  it('a loss that ended before the deciding packet\'s journey began leaves the cause standing, and says so', () => {
    const c = load('no-socket');
    const { first } = span(c);
    const v = explainCapture(withLoss(c, 2, first - 5e9, first - 4e9)).flows[0].verdict;
    expect(v.cause).toMatchObject({ type: 'socket', ref: 'tcp 10.199.2.2:81' });
    expect(v.evidence).not.toContain(expect.stringMatching(/trace incomplete/));
  });

  it('losses the trace could not place (still pending at its end) count for every flow', () => {
    const c = load('ip-forward-off');
    const v = explainCapture({ ...c, lost: c.lost + 3 }).flows[0].verdict;
    expect(v.cause.ref).toBe('trace incomplete');
    expect(v.evidence[0]).toContain('3 events lost');
  });

  it('a delivered flow stays delivered, with the loss in its evidence', () => {
    const c = load('delivered');
    const { first, last } = span(c);
    const v = explainCapture(withLoss(c, 1, first, last)).flows[0].verdict;
    expect(v.outcome).toBe('delivered');
    expect(v.evidence.at(-1)).toMatch(/^trace incomplete: 1 event lost .*; the outcome stands, it was seen$/);
  });

  it('no drop seen and events lost: unknown, and the drop may be among the lost', () => {
    const c = load('unknown-no-drop');
    const { first, last } = span(c);
    const v = explainCapture(withLoss(c, 4, first, last)).flows[0].verdict;
    expect(v.outcome).toBe('unknown');
    expect(v.evidence[0]).toMatch(/^trace incomplete: 4 events lost .*: the drop that ended this flow may be among them$/);
  });
});

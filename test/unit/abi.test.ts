// The TypeScript mirror of bpf/netwhy.h must match what a C compiler makes of it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ABI_VERSION, AF_INET, AF_INET6, type DropRecord, FILTER_CLAUSES, FILTER_TERMS, type FibRecord, FilterMode, LAYOUT, PROBES, type PathRecord, RecordType, STACK_DEPTH, decodeBatch, formatIPv4, formatIPv6 } from '../../src/abi.js';

const BPF_DIR = resolve(__dirname, '../../bpf');

function cOffsets(): Record<string, Record<string, number>> {
  const lines: string[] = [];
  for (const [struct, fields] of Object.entries(LAYOUT)) {
    lines.push(`printf("\\"${struct}\\": {\\"size\\": %zu", sizeof(struct ${struct}));`);
    for (const f of Object.keys(fields)) {
      if (f === 'size') continue;
      const cField = f === 'size_' ? 'size' : f;
      lines.push(`printf(", \\"${f}\\": %zu", offsetof(struct ${struct}, ${cField}));`);
    }
    lines.push('printf("},\\n");');
  }
  const probeLines = [`printf("\\"probes\\": {\\"max\\": %d", NW_PROBE_MAX);`, ...PROBES.map((p) => `printf(", \\"${p.c}\\": %d", ${p.c});`), 'printf("},\\n");'];
  const src = `#include <stdio.h>
#include <stddef.h>
#include "netwhy.h"
int main(void) {
  printf("{\\"consts\\": {\\"abi\\": %d, \\"stack\\": %d, \\"terms\\": %d, \\"clauses\\": %d},\\n", NW_ABI_VERSION, NW_STACK_DEPTH, NW_FILTER_TERMS, NW_FILTER_CLAUSES);
  printf("\\"modes\\": {\\"ALL\\": %d, \\"STATIC\\": %d, \\"FOLLOW\\": %d, \\"DROPS\\": %d},\\n", NW_FILTER_ALL, NW_FILTER_STATIC, NW_FILTER_FOLLOW, NW_FILTER_DROPS);
  ${lines.join('\n  ')}
  ${probeLines.join('\n  ')}
  printf("\\"end\\": {}}\\n");
  return 0;
}`;
  const dir = mkdtempSync(join(tmpdir(), 'nw-abi-'));
  writeFileSync(join(dir, 'abi.c'), src);
  execFileSync('cc', ['-I', BPF_DIR, '-o', join(dir, 'abi'), join(dir, 'abi.c')]);
  return JSON.parse(execFileSync(join(dir, 'abi')).toString());
}

describe('ABI', () => {
  const c = cOffsets();

  it('constants match netwhy.h', () => {
    expect(c.consts).toEqual({ abi: ABI_VERSION, stack: STACK_DEPTH, terms: FILTER_TERMS, clauses: FILTER_CLAUSES });
  });

  it('the filter modes (FilterMode) have the values of NW_FILTER_*', () => {
    expect(c.modes).toEqual(FilterMode);
  });

  it('the probe table (PROBES) has the ids of enum nw_probe_id, each below NW_PROBE_MAX', () => {
    const { max, ...ids } = c.probes;
    expect(ids).toEqual(Object.fromEntries(PROBES.map((p) => [p.c, p.id])));
    expect(new Set(PROBES.map((p) => p.id)).size).toBe(PROBES.length);
    for (const p of PROBES) expect(p.id).toBeLessThan(max);
  });

  for (const [struct, fields] of Object.entries(LAYOUT)) {
    it(`struct ${struct} layout matches the C compiler`, () => {
      expect(c[struct]).toEqual(fields);
    });
  }
});

describe('decodeBatch', () => {
  it('counts a record of another ABI version and skips it', () => {
    const rec = new Uint8Array(LAYOUT.nw_path.size);
    const dv = new DataView(rec.buffer);
    rec[0] = ABI_VERSION + 1;
    rec[1] = 2;
    dv.setUint16(2, rec.length, true);
    expect(decodeBatch(rec)).toEqual({ records: [], bad: 1, next: rec.length });
  });

  it('stops at a record whose size runs past the batch', () => {
    const rec = new Uint8Array(32);
    rec[0] = ABI_VERSION;
    rec[1] = 1;
    new DataView(rec.buffer).setUint16(2, 300, true);
    expect(decodeBatch(rec).bad).toBe(1);
  });

  it('never throws on random bytes', () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256);
    for (let n = 0; n < 500; n++) {
      const buf = Uint8Array.from({ length: (n * 37) % 700 }, rand);
      if (buf.length > 0 && n % 2 === 0) buf[0] = ABI_VERSION;
      expect(() => decodeBatch(buf)).not.toThrow();
    }
  });

  it('formats IPv6 like inet_ntop', () => {
    const b = new Uint8Array(16);
    b[0] = 0xfd; b[1] = 0x00; b[15] = 1;
    expect(formatIPv6(b, 0)).toBe('fd00::1');
  });
});

// The decoder caches device names, addresses and kernel addresses by their
// bytes (src/abi.ts): what it returns must still be exactly what the bytes say.
describe('decodeBatch caches give the bytes\' values', () => {
  function pathRecord(dev: string, src: number[], ts: bigint): Uint8Array {
    const rec = new Uint8Array(LAYOUT.nw_path.size);
    const dv = new DataView(rec.buffer);
    rec[0] = ABI_VERSION;
    rec[1] = RecordType.RX;
    dv.setUint16(2, rec.length, true);
    dv.setBigUint64(LAYOUT.nw_hdr.ts, ts, true);
    const p = LAYOUT.nw_path.pkt;
    for (let i = 0; i < dev.length; i++) rec[p + LAYOUT.nw_pkt.dev + i] = dev.charCodeAt(i);
    const t = p + LAYOUT.nw_pkt.tuple;
    rec[t + LAYOUT.nw_tuple.family] = AF_INET;
    rec.set(src, t + LAYOUT.nw_tuple.saddr);
    rec.set([10, 0, 0, 1], t + LAYOUT.nw_tuple.daddr);
    return rec;
  }

  it('many distinct device names and addresses, each decoded twice, collide in the cache and stay right', () => {
    const recs: Uint8Array[] = [];
    const want: { dev: string; src: string }[] = [];
    for (let i = 0; i < 20_000; i++) {
      const src = [10, (i >> 16) & 255, (i >> 8) & 255, i & 255];
      const dev = `veth${(i * 7919) % 50_000}`.slice(0, 15);
      recs.push(pathRecord(dev, src, BigInt(i)));
      want.push({ dev, src: src.join('.') });
    }
    const all = Buffer.concat([...recs, ...recs]);
    const { records, bad } = decodeBatch(all);
    expect(bad).toBe(0);
    const got = records.map((r) => `${(r as PathRecord).pkt.dev} ${(r as PathRecord).pkt.tuple.src}`);
    const expected = [...want, ...want].map((w) => `${w.dev} ${w.src}`);
    expect(got.length).toBe(expected.length);
    expect(got.filter((g, i) => g !== expected[i])).toEqual([]);
  });

  it('a device name with bytes after its NUL, or not valid UTF-8, decodes as before', () => {
    const a = pathRecord('eth0', [1, 2, 3, 4], 1n);
    a[LAYOUT.nw_path.pkt + LAYOUT.nw_pkt.dev + 6] = 0x41; // "eth0\0\0A"
    const b = pathRecord('e\xff0', [1, 2, 3, 4], 1n);
    const { records } = decodeBatch(Buffer.concat([a, b, a]));
    expect(records.map((r) => (r as PathRecord).pkt.dev)).toEqual(['eth0', 'e\ufffd0', 'eth0']);
  });

  it('timestamps above 2^32 and 2^53 are what Number(bigint) gives', () => {
    for (const ts of [0n, 1n, 0xffff_ffffn, 0x1_0000_0000n, 3_846_142_808_339n, 2n ** 53n - 1n, 2n ** 53n + 1n, 2n ** 64n - 1n, 0x8000_0000_8000_0001n]) {
      const { records } = decodeBatch(pathRecord('lo', [127, 0, 0, 1], ts));
      expect(records[0].ts).toBe(Number(ts));
    }
  });

  it('kernel addresses (location, stack) are the exact 64-bit values, also when repeated', () => {
    const D = LAYOUT.nw_drop;
    const rec = new Uint8Array(D.size);
    const dv = new DataView(rec.buffer);
    rec[0] = ABI_VERSION;
    rec[1] = RecordType.DROP;
    dv.setUint16(2, rec.length, true);
    const addrs = [0xffffffff81a0b0c0n, 0xffffffffc0001234n, 0x1n, 0x8000000000000000n, 0xffffffff81a0b0c1n];
    dv.setBigUint64(D.location, addrs[0], true);
    dv.setUint32(D.stack_len, addrs.length, true);
    addrs.forEach((a, i) => dv.setBigUint64(D.stack + i * 8, a, true));
    const { records } = decodeBatch(Buffer.concat([rec, rec]));
    for (const r of records as DropRecord[]) {
      expect(r.location).toBe(addrs[0]);
      expect(r.stack).toEqual(addrs);
    }
  });

  it('formatIPv4 formats every byte value', () => {
    const b = new Uint8Array(4);
    for (let v = 0; v < 256; v++) {
      b.set([v, 255 - v, v, 0]);
      expect(formatIPv4(b, 0)).toBe(`${v}.${255 - v}.${v}.0`);
    }
  });

  it('a route lookup record decodes every field', () => {
    const F = LAYOUT.nw_fib;
    const rec = new Uint8Array(F.size);
    const dv = new DataView(rec.buffer);
    rec[0] = ABI_VERSION;
    rec[1] = RecordType.FIB;
    dv.setUint16(2, rec.length, true);
    dv.setUint16(LAYOUT.nw_hdr.probe, 3, true);
    dv.setUint16(LAYOUT.nw_hdr.cpu, 1, true);
    dv.setBigUint64(LAYOUT.nw_hdr.ts, 77n, true);
    dv.setUint32(F.skb, 0x1234, true);
    dv.setUint16(F.skb + 4, 0x8880, true);
    dv.setUint32(F.table, 254, true);
    rec.set([192, 168, 0, 10], F.saddr);
    rec.set([192, 168, 0, 11], F.daddr);
    rec.set([192, 168, 0, 1], F.gw);
    dv.setInt32(F.err, -11, true);
    rec.set([101, 116, 104, 48], F.nh_dev);
    const r = decodeBatch(rec).records[0] as FibRecord;
    expect(r).toMatchObject({ kind: 'fib', family: AF_INET, ts: 77, cpu: 1, probe: 3, skb: 0x8880_0000_1234, table: 254, src: '192.168.0.10', dst: '192.168.0.11', gw: '192.168.0.1', err: -11, nhDev: 'eth0' });
    expect(Object.keys(r).slice(0, 6)).toEqual(['kind', 'ts', 'cpu', 'probe', 'family', 'skb']);
  });

  it('an IPv6 route lookup record (nw_fib6) decodes every field into the same record kind', () => {
    const F = LAYOUT.nw_fib6;
    const rec = new Uint8Array(F.size);
    const dv = new DataView(rec.buffer);
    rec[0] = ABI_VERSION;
    rec[1] = RecordType.FIB6;
    dv.setUint16(2, rec.length, true);
    dv.setUint16(LAYOUT.nw_hdr.probe, 10, true);
    dv.setBigUint64(LAYOUT.nw_hdr.ts, 78n, true);
    dv.setUint32(F.skb, 0x99, true);
    dv.setUint32(F.table, 254, true);
    dv.setUint32(F.iif, 3, true);
    rec.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10], F.saddr);
    rec.set([0xfd, 0, 0, 0x10, 2, 0x44, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2], F.daddr);
    rec.set([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], F.gw);
    dv.setInt32(F.err, 0, true);
    rec[F.proto] = 6;
    dv.setUint16(F.sport, 40000, true);
    dv.setUint16(F.dport, 80, true);
    rec[F.flags] = 1;
    rec[F.type] = 1;
    rec.set([101, 116, 104, 49], F.nh_dev);
    const r = decodeBatch(rec).records[0] as FibRecord;
    expect(r).toMatchObject({
      kind: 'fib', family: AF_INET6, probe: 10, skb: 0x99, table: 254, iif: 3, src: 'fd00::10', dst: 'fd00:10:244:2::2',
      gw: 'fe80::1', err: 0, nhDev: 'eth1', proto: 6, sport: 40000, dport: 80, flags: 1, routeType: 1,
    });
    rec.fill(0, F.gw, F.gw + 16);
    expect((decodeBatch(rec).records[0] as FibRecord).gw).toBeNull();
  });
});

// Fuzzing what netwhy reads from outside: ring buffer bytes (decodeBatch),
// recordings (decodeCapture), filters (parseFilter, compileFilter) and nft's
// JSON rulesets (parseNftRuleset and the walker). Each
// may only answer with its own typed error, and must always return. The
// seed is fixed, so a failure reproduces; the case that failed is printed.
import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ABI_VERSION, LAYOUT, RecordType, decodeBatch } from '../../src/abi.js';
import { compileFilter } from '../../src/filter/compile.js';
import { FilterError, parseFilter } from '../../src/filter/parse.js';
import { RecordingError, decodeCapture, encodeCapture } from '../../src/recording.js';
import type { NetfilterPacket } from '../../src/model/netfilter.js';
import { NftParseError, parseNftRuleset } from '../../src/state/netfilter/nft-json.js';
import { netfilterEvaluator } from '../../src/state/netfilter.js';
import type { Snapshot } from '../../src/state/snapshot.js';

/** mulberry32: small, fast, deterministic. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
    bytes: (n: number) => Uint8Array.from({ length: n }, () => Math.floor(next() * 256)),
  };
}

const RECORDINGS = resolve(__dirname, '../fixtures/recordings');
const fixtures = readdirSync(RECORDINGS).filter((f) => f.endsWith('.nwrec')).map((f) => readFileSync(resolve(RECORDINGS, f)));
const realRecords = Buffer.concat(fixtures.map((f) => decodeCapture(f).records));

/** Run fn on each case; the first unexpected error fails the test with the case. */
function expectOnly(cases: Iterable<unknown>, fn: (c: never) => void, allowed: (e: unknown) => boolean): number {
  let n = 0;
  for (const c of cases) {
    try {
      fn(c as never);
    } catch (e) {
      if (!allowed(e)) {
        const shown = c instanceof Uint8Array ? `${c.length} bytes: ${Buffer.from(c.subarray(0, 64)).toString('hex')}...` : JSON.stringify(c)?.slice(0, 300);
        throw new Error(`unexpected ${(e as Error)?.constructor?.name}: ${(e as Error)?.message?.slice(0, 200)}\n  on ${shown}`);
      }
    }
    n++;
  }
  return n;
}

describe('fuzz: decodeBatch (ring buffer bytes)', () => {
  const KINDS = new Set(['drop', 'rx', 'tx', 'fib', 'ipvs-conn', 'ipvs-err', 'ipvs-ctl', 'lost', 'sock']);
  const check = (buf: Uint8Array) => {
    const { records, bad } = decodeBatch(buf);
    expect(bad).toBeGreaterThanOrEqual(0);
    for (const r of records) if (!KINDS.has(r.kind)) throw new Error(`record of kind ${r.kind}`);
  };

  it('the recorded fixtures decode cleanly (the corpus the mutations start from)', () => {
    expect(realRecords.length).toBeGreaterThan(10_000);
    expect(decodeBatch(realRecords).bad).toBe(0);
  });

  it('decoded in slices of 7 records (as a trace hands them over), the corpus gives the same records, and so does a damaged copy', () => {
    for (const buf of [realRecords, Uint8Array.from(realRecords, (b, i) => (i % 997 === 5 ? b ^ 0x5a : b))]) {
      const whole = decodeBatch(buf);
      const sliced: unknown[] = [];
      let bad = 0;
      let slices = 0;
      for (let from = 0; from < buf.length; slices++) {
        const r = decodeBatch(buf, [], from, 7);
        expect(r.records.length).toBeLessThanOrEqual(7);
        expect(r.next).toBeGreaterThan(from);
        sliced.push(...r.records);
        bad += r.bad;
        from = r.next;
      }
      expect(sliced).toEqual(whole.records);
      expect(bad).toBe(whole.bad);
      expect(slices).toBeGreaterThanOrEqual(whole.records.length / 7);
    }
  });

  it('random bytes, with and without a valid header in front: never throws', () => {
    const r = rng(1);
    function* cases() {
      for (let i = 0; i < 3000; i++) {
        const b = r.bytes(r.int(1200));
        if (b.length >= 4 && i % 2 === 0) {
          b[0] = ABI_VERSION;
          b[1] = r.pick(Object.values(RecordType));
          new DataView(b.buffer).setUint16(2, 16 + r.int(b.length), true);
        }
        yield b;
      }
    }
    expect(expectOnly(cases(), check, () => false)).toBe(3000);
  });

  it('real records with bytes flipped, sizes changed and cut anywhere: never throws', () => {
    const r = rng(2);
    function* cases() {
      for (let i = 0; i < 3000; i++) {
        const start = r.int(realRecords.length - 4096);
        const b = Uint8Array.from(realRecords.subarray(start - (start % 8), start + r.int(4096)));
        for (let k = r.int(24); k > 0; k--) b[r.int(b.length)] = r.int(256);
        if (i % 3 === 0 && b.length > 4) new DataView(b.buffer).setUint16(2, r.int(65536), true);
        yield b;
      }
    }
    expect(expectOnly(cases(), check, () => false)).toBe(3000);
  });

  it('every record type at every size from a header to its full length: counted as bad, never thrown', () => {
    let bad = 0;
    for (const type of Object.values(RecordType)) {
      for (let size = LAYOUT.nw_hdr.size; size <= 400; size += 4) {
        const b = new Uint8Array(size);
        b[0] = ABI_VERSION;
        b[1] = type;
        new DataView(b.buffer).setUint16(2, size, true);
        bad += decodeBatch(b).bad;
      }
    }
    expect(bad).toBeGreaterThan(0);
  });
});

describe('fuzz: decodeCapture (recordings)', () => {
  const onlyRecordingError = (e: unknown) => e instanceof RecordingError;

  it('random bytes and damaged magic: RecordingError only', () => {
    const r = rng(3);
    const magic = Buffer.from('NETWHY-RECORDING\n');
    function* cases() {
      for (let i = 0; i < 2000; i++) {
        const b = r.bytes(r.int(300));
        if (i % 2 === 0) b.set(magic.subarray(0, Math.min(magic.length, b.length)));
        yield b;
      }
    }
    expect(expectOnly(cases(), (b: Uint8Array) => decodeCapture(b), onlyRecordingError)).toBe(2000);
  });

  it('a real recording cut at every length: RecordingError or the records it still holds', () => {
    const f = fixtures[0];
    const step = Math.max(1, Math.floor(f.length / 3000));
    function* cases() {
      for (let n = 0; n < f.length; n += step) yield f.subarray(0, n);
    }
    expectOnly(cases(), (b: Uint8Array) => decodeCapture(b), onlyRecordingError);
  });

  it('real recordings with bytes flipped in the metadata: RecordingError only', () => {
    const r = rng(4);
    function* cases() {
      for (let i = 0; i < 2000; i++) {
        const b = Uint8Array.from(r.pick(fixtures));
        const metaEnd = Math.min(b.length, 21 + new DataView(b.buffer).getUint32(17, true));
        for (let k = 1 + r.int(4); k > 0; k--) b[r.int(metaEnd)] = r.int(256);
        yield b;
      }
    }
    expectOnly(cases(), (b: Uint8Array) => decodeCapture(b), onlyRecordingError);
  });

  it('metadata that is JSON but not an object, or lacks fields: RecordingError only', () => {
    const real = decodeCapture(fixtures[0]);
    const withMeta = (json: string) => {
      const good = encodeCapture(real);
      const head = good.subarray(0, 17);
      const meta = Buffer.from(json);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(meta.length);
      return Buffer.concat([head, len, meta]);
    };
    const metas = ['null', '1', '"x"', '[]', 'true', '{}', '{"version":1}', '{"version":1,"abiVersion":1}', `{"version":1,"abiVersion":${ABI_VERSION},"dropReasons":null}`];
    expectOnly(metas.map(withMeta), (b: Uint8Array) => decodeCapture(b), onlyRecordingError);
  });
});

describe('fuzz: filters', () => {
  const netns = (name: string) => (name === 'node1' ? 4026532000 : undefined);
  const onlyFilterError = (e: unknown) => e instanceof FilterError;
  const compile = (src: string) => {
    const { value } = compileFilter(src, netns);
    if (value.length !== LAYOUT.nw_filter.size) throw new Error(`filter value of ${value.length} bytes`);
  };

  const TOKENS = [
    'host', 'net', 'port', 'portrange', 'src', 'dst', 'tcp', 'udp', 'icmp', 'icmp6', 'sctp', 'ip', 'ip6', 'proto', 'netns',
    'and', 'or', 'not', '&&', '||', '!', '(', ')', '&', '|', 'AND', 'Host',
    '0', '53', '65535', '65536', '-1', '1-2', '30000-32767', '9-1', '1e3', '0x10', 'NaN',
    '10.0.0.1', '10.0.0.0/8', '10.0.0.0/33', '10.0.0.1/', '256.1.1.1', '1.2.3', '::1', 'fd00::/64', '::ffff:1.2.3.4', '1::2::3', 'fe80::1%eth0',
    'node1', 'nosuchns', '', '\t', '\u00e9', '\u{1F600}', '"', "'", '\\', '/', ':', '..', '--',
  ] as const;

  it('token soup: compiles, or a FilterError with a column', () => {
    const r = rng(5);
    function* cases() {
      for (let i = 0; i < 20_000; i++) {
        const n = r.int(12);
        const toks = Array.from({ length: n }, () => r.pick(TOKENS));
        yield toks.join(r.next() < 0.8 ? ' ' : '');
      }
    }
    expect(expectOnly(cases(), compile, onlyFilterError)).toBe(20_000);
  });

  it('character soup: parses, or a FilterError', () => {
    const r = rng(6);
    const chars = 'abcdhinoprstu0123456789.:/-()!&| \t\n\u00e9\u0000';
    function* cases() {
      for (let i = 0; i < 20_000; i++) yield Array.from({ length: r.int(40) }, () => r.pick([...chars])).join('');
    }
    expect(expectOnly(cases(), (s: string) => parseFilter(s), onlyFilterError)).toBe(20_000);
  });

  it('long and deeply nested filters: a FilterError, not a stack overflow', () => {
    const cases = [
      `${'('.repeat(20_000)}tcp${')'.repeat(20_000)}`,
      `${'not '.repeat(50_000)}tcp`,
      `${'! '.repeat(50_000)}tcp`,
      `${'tcp and '.repeat(50_000)}udp`,
      `${'tcp or '.repeat(50_000)}udp`,
      `${'('.repeat(20_000)}tcp`,
      'host 10.0.0.1 and '.repeat(2000) + 'port',
    ];
    expectOnly(cases, compile, onlyFilterError);
  });
});

describe('fuzz: parseNftRuleset and the nft walker (nft -j list ruleset)', () => {
  const NFT_DIR = resolve(__dirname, '../fixtures/nft');
  const corpus = readdirSync(NFT_DIR).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(resolve(NFT_DIR, f), 'utf8')) as { nftables: unknown[] });
  const WEIRD: unknown[] = [null, 0, -1, 1e308, '', '@', '@nope', 'tcp', [], {}, { set: [] }, { concat: [] }, { prefix: { addr: 'x', len: 99 } }, { range: [] }, { meta: { key: 'skuid' } }, { '&': [] }, { elem: null }, true];
  /** Replace a random value deep in the document by a weird one. */
  function mutate(v: unknown, r: ReturnType<typeof rng>, depth = 0): unknown {
    if (r.next() < 0.08 || depth > 12) return r.pick(WEIRD);
    if (Array.isArray(v)) return v.length && r.next() < 0.3 ? v.filter((_, i) => i !== r.int(v.length)) : v.map((x) => (r.next() < 0.2 ? mutate(x, r, depth + 1) : x));
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, r.next() < 0.3 ? mutate(x, r, depth + 1) : x]));
    return v;
  }
  const packets: NetfilterPacket[] = [
    { proto: 6, src: '192.168.0.10', sport: 40000, dst: '192.168.0.11', dport: 30080, iif: 'eth0', mark: 0, ctstate: ['NEW'] },
    { proto: 17, src: '10.244.1.2', sport: 5353, dst: '10.96.0.10', dport: 53, mark: 0x4000, ctstate: ['ESTABLISHED', 'DNAT'] },
    { proto: 1, src: 'fd00::1', dst: 'fd00::2', mark: 0, ctstate: ['NEW'] },
  ];
  it('mutated real rulesets: NftParseError, or an evaluator whose every answer is a finding', () => {
    const r = rng(9);
    function* cases() {
      for (let i = 0; i < 1500; i++) yield mutate(corpus[i % corpus.length], r);
    }
    const n = expectOnly(cases(), (doc: unknown) => {
      const snap = { netns: 'f', iptablesSave: null, nftJson: doc, addrs: [{ address: '192.168.0.11' }], errors: [] } as unknown as Snapshot;
      try {
        parseNftRuleset(doc);
      } catch (e) {
        if (e instanceof NftParseError) return;
        throw e;
      }
      const ev = netfilterEvaluator(snap);
      for (const hook of ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] as const) {
        for (const p of packets) {
          const f = ev?.evaluate(hook, p);
          if (f && !['ACCEPT', 'DROP', 'REJECT', 'QUEUE'].includes(f.verdict)) throw new Error(`verdict ${f.verdict}`);
          ev?.natRules('PREROUTING', p);
        }
      }
    }, (e) => e instanceof NftParseError);
    expect(n).toBe(1500);
  });
});

import { describe, expect, it } from 'vitest';
import { AF_INET, FilterMode, LAYOUT, TermKind } from '../../src/abi.js';
import { compileFilter, toDnf } from '../../src/filter/compile.js';
import { FilterError, parseAddress, parseFilter } from '../../src/filter/parse.js';

const netns = (n: string) => ({ node1: 4026532000 })[n];

function term(value: Uint8Array, clause: number, idx: number) {
  const dv = new DataView(value.buffer);
  const off = LAYOUT.nw_filter.clauses + clause * LAYOUT.nw_clause.size + LAYOUT.nw_clause.terms + idx * LAYOUT.nw_term.size;
  const T = LAYOUT.nw_term;
  return {
    kind: value[off + T.kind], negate: value[off + T.negate], family: value[off + T.family],
    lo: dv.getUint32(off + T.lo, true), hi: dv.getUint32(off + T.hi, true),
    addr: [...value.subarray(off + T.addr, off + T.addr + 4)], mask: [...value.subarray(off + T.mask, off + T.mask + 4)],
  };
}

describe('filter parser', () => {
  it('parses the examples from --help', () => {
    for (const f of ['host 10.0.0.1 and port 30080', 'net 10.244.0.0/16', 'udp', 'tcp port 53', 'netns node1',
      'src host 10.0.0.1', 'dst portrange 30000-32767', 'not icmp', '(udp or icmp) and not port 22', 'ip6 and host fd00::1', '! tcp && port 80 || udp']) {
      expect(() => parseFilter(f), f).not.toThrow();
    }
  });

  it('reads "tcp port 53" as tcp and port 53', () => {
    expect(parseFilter('tcp port 53')).toEqual({
      op: 'and', a: { op: 'term', term: { t: 'proto', proto: 6 } }, b: { op: 'term', term: { t: 'port', dir: 'any', lo: 53, hi: 53 } },
    });
  });

  it.each([
    ['host', 'expected an IP address, found the end of the filter at column 5'],
    ['host 10.0.0.300', "'10.0.0.300' is not an IPv4 or IPv6 address at column 6"],
    ['port 70000', "'70000' is not a port (0-65535) at column 6"],
    ['net 10.0.0.0', "'net' needs a prefix length, like 10.0.0.0/24 at column 5"],
    ['net 10.0.0.0/33', "'/33' is not a prefix length (0-32) at column 5"],
    ['host 10.0.0.1 port 80', "unexpected 'port' (missing 'and' or 'or'?) at column 15"],
    ['(udp or tcp', "missing ')' for the '(' at column 1 at column 12"],
    ['frobnicate', "unknown filter term 'frobnicate'"],
    ['portrange 9-3', "'9-3' is not a port range"],
    ['', 'empty filter'],
  ])('rejects %j with a message that says where', (src, msg) => {
    expect(() => parseFilter(src)).toThrow(FilterError);
    expect(() => parseFilter(src)).toThrow(msg);
  });

  it('parses IPv6 forms', () => {
    expect([...parseAddress('::ffff:10.0.0.1')!.bytes.slice(10)]).toEqual([0xff, 0xff, 10, 0, 0, 1]);
    expect(parseAddress('fd00::1')!.bytes[15]).toBe(1);
    expect(parseAddress('nonsense')).toBeNull();
  });
});

describe('filter compiler', () => {
  it('turns an expression into disjunctive normal form with negations at the terms', () => {
    const dnf = toDnf(parseFilter('not (udp or tcp) and port 53'));
    expect(dnf).toHaveLength(1);
    expect(dnf[0].map((l) => [l.term.t, l.negate])).toEqual([['proto', true], ['proto', true], ['port', false]]);
    expect(toDnf(parseFilter('(udp or tcp) and (port 53 or port 80)'))).toHaveLength(4);
  });

  it('writes terms the BPF side reads: host with a /32 mask, a net masked, ports as ranges', () => {
    const { value } = compileFilter('host 10.0.0.1 and dst net 10.244.7.9/16 and port 30080', netns);
    const dv = new DataView(value.buffer);
    expect(dv.getUint32(LAYOUT.nw_filter.mode, true)).toBe(FilterMode.STATIC);
    expect(dv.getUint32(LAYOUT.nw_filter.nclauses, true)).toBe(1);
    expect(term(value, 0, 0)).toMatchObject({ kind: TermKind.HOST, family: AF_INET, addr: [10, 0, 0, 1], mask: [255, 255, 255, 255] });
    expect(term(value, 0, 1)).toMatchObject({ kind: TermKind.DST, addr: [10, 244, 0, 0], mask: [255, 255, 0, 0] });
    expect(term(value, 0, 2)).toMatchObject({ kind: TermKind.PORT, lo: 30080, hi: 30080 });
  });

  it('resolves netns names, and rejects unknown ones', () => {
    expect(term(compileFilter('netns node1', netns).value, 0, 0)).toMatchObject({ kind: TermKind.NETNS, lo: 4026532000 });
    expect(() => compileFilter('netns nope', netns)).toThrow("unknown network namespace 'nope'");
  });

  it('refuses a filter that expands past what the kernel side holds', () => {
    const big = Array.from({ length: 4 }, (_, i) => `(port ${i} or port ${i + 100})`).join(' and ');
    expect(() => compileFilter(big, netns)).toThrow(/too complex/);
  });
});

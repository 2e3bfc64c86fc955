// The probes' packet parser (bpf/common.bpf.h parse_headers) on crafted
// packets: bpf/test/parse_test.bpf.c runs it in a tc program under
// BPF_PROG_TEST_RUN (bpftool prog run) and writes what it found over the
// frame's first bytes. No namespace, no traffic: the kernel only runs the
// program on the bytes given.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AF_INET, AF_INET6, LAYOUT, PktFlag } from '../../src/abi.js';
import { formatIPv4, formatIPv6 } from '../../src/abi.js';
import { isRoot } from '../helpers/netns.js';

const OBJ = resolve(__dirname, '../../bpf/build/test/parse_test.bpf.o');
const PIN = `/sys/fs/bpf/netwhy-parse-test-${process.pid}`;

const NH = { HOP: 0, TCP: 6, UDP: 17, ROUTING: 43, FRAGMENT: 44, ESP: 50, AUTH: 51, ICMPV6: 58, NONE: 59, DEST: 60 };
const SRC6 = 'fd000000000000000000000000000001';
const DST6 = 'fd00001002440002000000000000000a';

const eth = (type: number) => Buffer.concat([Buffer.alloc(12), Buffer.from([type >> 8, type & 0xff])]);
function tcp(sport: number, dport: number, flags = 0x02): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b[12] = 0x50;
  b[13] = flags;
  return b;
}
/** An options header (hop-by-hop, destination) of `len8` 8-byte units: a PadN fills it. */
function opts(next: number, len8 = 1): Buffer {
  const b = Buffer.alloc(len8 * 8);
  b[0] = next;
  b[1] = len8 - 1;
  b[2] = 1; // PadN
  b[3] = len8 * 8 - 4;
  return b;
}
function routing(next: number): Buffer {
  return Buffer.from([next, 0, 0, 0, 0, 0, 0, 0]); // type 0, segments left 0
}
function fragment(next: number, offset8: number, more: boolean): Buffer {
  const b = Buffer.alloc(8);
  b[0] = next;
  b.writeUInt16BE((offset8 << 3) | (more ? 1 : 0), 2);
  b.writeUInt32BE(0x1234, 4);
  return b;
}
function auth(next: number): Buffer {
  const b = Buffer.alloc(16); // payload length 2 = (2 + 2) * 4 bytes
  b[0] = next;
  b[1] = 2;
  return b;
}
function ipv6(next: number, rest: Buffer, hopLimit = 64): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32BE(6 << 28, 0);
  h.writeUInt16BE(rest.length, 4);
  h[6] = next;
  h[7] = hopLimit;
  Buffer.from(SRC6, 'hex').copy(h, 8);
  Buffer.from(DST6, 'hex').copy(h, 24);
  return Buffer.concat([eth(0x86dd), h, rest]);
}
function ipv4(proto: number, rest: Buffer, fragOff = 0, ttl = 64): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + rest.length, 2);
  h.writeUInt16BE(fragOff, 6);
  h[8] = ttl;
  h[9] = proto;
  Buffer.from([10, 244, 1, 2]).copy(h, 12);
  Buffer.from([10, 244, 2, 2]).copy(h, 16);
  return Buffer.concat([eth(0x0800), h, rest]);
}

describe.skipIf(!isRoot())('BPF packet parser on crafted packets (BPF_PROG_TEST_RUN)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nw-parse-'));
    execFileSync('bpftool', ['prog', 'load', OBJ, PIN, 'type', 'classifier']);
  });
  afterAll(() => {
    rmSync(PIN, { force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function parse(frame: Buffer) {
    // the program writes its result over the frame: make room for it
    const pkt = frame.length < 64 ? Buffer.concat([frame, Buffer.alloc(64 - frame.length)]) : frame;
    writeFileSync(join(dir, 'in'), pkt);
    const out = execFileSync('bpftool', ['prog', 'run', 'pinned', PIN, 'data_in', join(dir, 'in'), 'data_out', join(dir, 'out')]).toString();
    expect(out).toMatch(/Return value: 0\b/);
    const b = readFileSync(join(dir, 'out'));
    const T = LAYOUT.nw_tuple;
    const family = b[T.family];
    const fmt = family === AF_INET ? formatIPv4 : formatIPv6;
    return {
      family, proto: b[T.proto], src: fmt(b, T.saddr), dst: fmt(b, T.daddr),
      sport: b.readUInt16LE(T.sport), dport: b.readUInt16LE(T.dport),
      flags: b.readUInt16LE(T.size), ttl: b[T.size + 2], tcpFlags: b[T.size + 3],
    };
  }
  const has = (flags: number, f: number) => (flags & f) !== 0;

  it('a plain IPv6 TCP SYN: addresses, ports, hop limit, flags', () => {
    const r = parse(ipv6(NH.TCP, tcp(40000, 80), 63));
    expect(r).toMatchObject({ family: AF_INET6, proto: NH.TCP, src: 'fd00::1', dst: 'fd00:10:244:2::a', sport: 40000, dport: 80, ttl: 63, tcpFlags: 0x02 });
    expect(has(r.flags, PktFlag.HAS_L4)).toBe(true);
    expect(has(r.flags, PktFlag.FRAG)).toBe(false);
  });

  it('walks hop-by-hop, routing, a first fragment and destination options to TCP, and marks the fragment', () => {
    const ext = Buffer.concat([opts(NH.ROUTING), routing(NH.FRAGMENT), fragment(NH.DEST, 0, true), opts(NH.TCP, 2)]);
    const r = parse(ipv6(NH.HOP, Buffer.concat([ext, tcp(40001, 443)])));
    expect(r).toMatchObject({ proto: NH.TCP, sport: 40001, dport: 443 });
    expect(has(r.flags, PktFlag.HAS_L4)).toBe(true);
    expect(has(r.flags, PktFlag.FRAG)).toBe(true);
    expect(has(r.flags, PktFlag.FRAG_LATER)).toBe(false);
  });

  it('a later IPv6 fragment: the protocol from the fragment header, no ports', () => {
    const r = parse(ipv6(NH.FRAGMENT, Buffer.concat([fragment(NH.UDP, 185, false), Buffer.alloc(24, 0xab)])));
    expect(r).toMatchObject({ proto: NH.UDP, sport: 0, dport: 0 });
    expect(has(r.flags, PktFlag.FRAG | PktFlag.FRAG_LATER)).toBe(true);
    expect(has(r.flags, PktFlag.HAS_L4)).toBe(false);
  });

  it('skips an AH header (length in 4-byte units) to UDP', () => {
    const udp = Buffer.from([0x00, 0x35, 0x30, 0x39, 0, 8, 0, 0]);
    const r = parse(ipv6(NH.AUTH, Buffer.concat([auth(NH.UDP), udp])));
    expect(r).toMatchObject({ proto: NH.UDP, sport: 53, dport: 12345 });
  });

  it('ICMPv6 after destination options: type and code in the port fields', () => {
    const r = parse(ipv6(NH.DEST, Buffer.concat([opts(NH.ICMPV6), Buffer.from([1, 4, 0, 0, 0, 0, 0, 0])])));
    expect(r).toMatchObject({ proto: NH.ICMPV6, sport: 1, dport: 4 });
  });

  it('ESP and "no next header" end the walk there', () => {
    expect(parse(ipv6(NH.ESP, Buffer.alloc(32, 1)))).toMatchObject({ proto: NH.ESP, sport: 0, dport: 0 });
    expect(parse(ipv6(NH.HOP, Buffer.concat([opts(NH.NONE), Buffer.alloc(16)])))).toMatchObject({ proto: NH.NONE, sport: 0 });
  });

  it('gives up after NW_IPV6_MAX_EXT (8) extension headers: no L4 header, no guess', () => {
    const chain = Array.from({ length: 9 }, (_, i) => opts(i === 8 ? NH.TCP : NH.DEST));
    const r = parse(ipv6(NH.DEST, Buffer.concat([...chain, tcp(1, 2)])));
    expect(has(r.flags, PktFlag.HAS_L4)).toBe(false);
    expect(r.sport).toBe(0);
    const seven = Array.from({ length: 7 }, (_, i) => opts(i === 6 ? NH.TCP : NH.DEST));
    expect(parse(ipv6(NH.DEST, Buffer.concat([...seven, tcp(1, 2)])))).toMatchObject({ proto: NH.TCP, sport: 1, dport: 2 });
  });

  it('IPv4: the first fragment has ports and is marked; a later one has neither ports nor L4', () => {
    const first = parse(ipv4(NH.TCP, tcp(1234, 80), 0x2000, 1));
    expect(first).toMatchObject({ family: AF_INET, src: '10.244.1.2', dst: '10.244.2.2', sport: 1234, dport: 80, ttl: 1 });
    expect(has(first.flags, PktFlag.FRAG)).toBe(true);
    const later = parse(ipv4(NH.TCP, Buffer.alloc(24), 0x0010));
    expect(has(later.flags, PktFlag.FRAG_LATER)).toBe(true);
    expect(later.sport).toBe(0);
    const whole = parse(ipv4(NH.UDP, Buffer.from([0, 53, 0, 54, 0, 8, 0, 0])));
    expect(has(whole.flags, PktFlag.FRAG)).toBe(false);
    expect(whole).toMatchObject({ sport: 53, dport: 54 });
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BtfError, readEnum } from '../../src/kernel/btf.js';
import { KallsymsParser, dropReasonNames, kallsymsColumns, parseKallsyms } from '../../src/kernel/symbols.js';

/** A BTF blob with an INT, a STRUCT with one member, and the given enum. */
export function makeBtf(enumName: string, values: [string, number][]): Uint8Array {
  const strs = ['', 'int', 'pair', 'x', enumName, ...values.map(([n]) => n)];
  const strOffsets: number[] = [];
  let strLen = 0;
  for (const s of strs) {
    strOffsets.push(strLen);
    strLen += Buffer.byteLength(s) + 1;
  }
  const types: number[] = [];
  // INT "int": name, info(kind 1), size 4, then encoding u32
  types.push(strOffsets[1], 1 << 24, 4, 32);
  // STRUCT "pair" with 1 member "x" of type 1 at offset 0
  types.push(strOffsets[2], (4 << 24) | 1, 4, strOffsets[3], 1, 0);
  // ENUM
  types.push(strOffsets[4], (6 << 24) | values.length, 4);
  values.forEach(([, v], i) => types.push(strOffsets[5 + i], v));
  const typeBytes = types.length * 4;
  const buf = new Uint8Array(24 + typeBytes + strLen);
  const dv = new DataView(buf.buffer);
  dv.setUint16(0, 0xeb9f, true);
  buf[2] = 1;
  dv.setUint32(4, 24, true);
  dv.setUint32(8, 0, true);
  dv.setUint32(12, typeBytes, true);
  dv.setUint32(16, typeBytes, true);
  dv.setUint32(20, strLen, true);
  types.forEach((w, i) => dv.setUint32(24 + i * 4, w, true));
  let p = 24 + typeBytes;
  for (const s of strs) {
    buf.set(Buffer.from(s), p);
    p += Buffer.byteLength(s) + 1;
  }
  return buf;
}

describe('BTF enum reader', () => {
  it('reads the values of a named enum past other kinds', () => {
    const btf = makeBtf('skb_drop_reason', [['SKB_NOT_DROPPED_YET', 0], ['SKB_CONSUMED', 1], ['SKB_DROP_REASON_NO_SOCKET', 3]]);
    const m = readEnum(btf, 'skb_drop_reason');
    expect(m?.get('SKB_DROP_REASON_NO_SOCKET')).toBe(3);
    expect(readEnum(btf, 'missing_enum')).toBeNull();
  });

  it('names drop reasons without their prefix', () => {
    const names = dropReasonNames(new Map([['SKB_DROP_REASON_IP_RPFILTER', 17], ['SKB_CONSUMED', 1], ['SKB_DROP_REASON_MAX', 99]]));
    expect(names.get(17)).toBe('IP_RPFILTER');
    expect(names.get(1)).toBe('CONSUMED');
    expect(names.has(99)).toBe(false);
  });

  it('rejects data that is not BTF', () => {
    expect(() => readEnum(new Uint8Array(64), 'x')).toThrow(BtfError);
    const truncated = makeBtf('e', [['A', 1]]).slice(0, 30);
    expect(() => readEnum(truncated, 'e')).toThrow(BtfError);
  });
});

describe('kallsyms', () => {
  const syms = parseKallsyms(
    ['ffffffff81000000 T _stext', 'ffffffff81a00000 t ip_local_deliver', 'ffffffff81a00100 T nf_hook_slow', 'ffffffff81b00000 D some_data', 'ffffffffc0000000 t ip_vs_in_hook\t[ip_vs]'].join('\n'),
  );
  it('resolves an address to function+offset, modules too', () => {
    expect(syms.name(0xffffffff81a0004cn)).toBe('ip_local_deliver+0x4c');
    expect(syms.func(0xffffffff81a00104n)).toBe('nf_hook_slow');
    expect(syms.func(0xffffffffc0000010n)).toBe('ip_vs_in_hook');
  });
  it('gives the hex address below every symbol', () => {
    expect(syms.name(0x1000n)).toBe('0x1000');
  });
  it('sorts module symbols listed out of order, and skips data and malformed lines', () => {
    const s = parseKallsyms(
      ['ffffffffc0001000 t b_mod\t[m]', 'ffffffff81000000 T _stext', 'zzzz T bad', 'ffffffffc0000000 t a_mod\t[m]', 'ffffffff81000100 d data_sym', 'ffffffff81000200 T'].join('\n'),
    );
    expect(s.name(0xffffffffc0000fffn)).toBe('a_mod+0xfff');
    expect(s.name(0xffffffffc0001001n)).toBe('b_mod+0x1');
    expect(s.name(0xffffffff81000104n)).toBe('_stext+0x104');
    expect(s.func(0xffffffff80ffffffn)).toBeUndefined();
  });
  it('reads this machine\'s kallsyms like the kernel lists them', () => {
    let text: string;
    try {
      text = readFileSync('/proc/kallsyms', 'utf8');
    } catch {
      return; // not Linux
    }
    // Text symbols in kernel order; pick one alone at its address, at least 4 bytes long.
    const syms = text.split('\n').flatMap((l) => {
      const m = /^([0-9a-f]{16}) [tT] (\S+)/.exec(l);
      return m && !/^0+$/.test(m[1]) ? [{ addr: BigInt('0x' + m[1]), name: m[2] }] : [];
    });
    if (syms.length < 3) return; // hidden without privileges: nothing to compare
    const i = syms.findIndex((x, k) => k > 0 && k < syms.length - 1 && syms[k - 1].addr < x.addr && syms[k + 1].addr > x.addr + 3n);
    expect(i).toBeGreaterThan(0);
    const parsed = parseKallsyms(text);
    expect(parsed.name(syms[i].addr + 3n)).toBe(`${syms[i].name}+0x3`);
    expect(parsed.func(syms[i].addr)).toBe(syms[i].name);
  });
  it('fed in chunks that cut lines anywhere (as read 64 KiB at a time), gives the columns of one whole push', () => {
    const text = ['ffffffffc0001000 t b_mod\t[m]', 'ffffffff81000000 T _stext', 'zzzz T bad', 'ffffffffc0000000 t a_mod\t[m]', 'ffffffff81000100 d data_sym', 'ffffffff81a00000 t ip_local_deliver'].join('\n');
    const bytes = Buffer.from(text, 'latin1');
    const whole = kallsymsColumns(bytes);
    expect(whole.n).toBe(4);
    for (const size of [1, 3, 7, 40]) {
      const p = new KallsymsParser();
      for (let i = 0; i < bytes.length; i += size) p.push(bytes.subarray(i, i + size));
      expect(p.finish(), `chunks of ${size}`).toEqual(whole);
    }
  });

  it('treats hidden (all-zero) kallsyms as unknown', () => {
    const hidden = parseKallsyms('0000000000000000 T a\n0000000000000000 T b\n');
    expect(hidden.name(0xffffffff81a0004cn)).toBe('0xffffffff81a0004c');
  });
});

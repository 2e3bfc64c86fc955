// The TypeScript mirror of bpf/netwhy.h must match what a C compiler makes of it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ABI_VERSION, FILTER_CLAUSES, FILTER_TERMS, LAYOUT, STACK_DEPTH, decodeBatch, formatIPv6 } from '../../src/abi.js';

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
  const src = `#include <stdio.h>
#include <stddef.h>
#include "netwhy.h"
int main(void) {
  printf("{\\"consts\\": {\\"abi\\": %d, \\"stack\\": %d, \\"terms\\": %d, \\"clauses\\": %d},\\n", NW_ABI_VERSION, NW_STACK_DEPTH, NW_FILTER_TERMS, NW_FILTER_CLAUSES);
  ${lines.join('\n  ')}
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
    expect(decodeBatch(rec)).toEqual({ records: [], bad: 1 });
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

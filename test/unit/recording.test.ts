// Recordings carry their format and record ABI: a newer one is refused with
// what to do, an older one goes through the upgrade chain (empty today: the
// chain's mechanism and error paths are tested with hand-made metadata).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ABI_VERSION } from '../../src/abi.js';
import {
  COMPAT, type CompatChain, RECORDING_VERSION, type RawCapture, RecordingError, type Upgrade, compat, decodeCapture, encodeCapture,
} from '../../src/recording.js';

const real = decodeCapture(readFileSync(resolve(__dirname, '../fixtures/recordings/no-socket.nwrec')));

/** A recording file with this metadata (any shape) and the real records. */
function file(meta: Record<string, unknown>): Uint8Array {
  const { records, ...base } = real;
  const good = encodeCapture(real);
  const json = Buffer.from(JSON.stringify({ ...base, ...meta }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  return Buffer.concat([good.subarray(0, 17), len, json, records]);
}

const raw = (meta: Record<string, unknown>): RawCapture => ({ records: new Uint8Array(0), ...meta });

function refused(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(RecordingError);
    return (e as Error).message;
  }
  throw new Error('expected a RecordingError');
}

describe('recordings: format and ABI', () => {
  it('this netwhy writes and reads format RECORDING_VERSION with ABI_VERSION records, unchanged', () => {
    expect(real.version).toBe(RECORDING_VERSION);
    expect(real.abiVersion).toBe(ABI_VERSION);
    expect(decodeCapture(encodeCapture(real))).toEqual(real);
    expect(COMPAT).toMatchObject({ version: RECORDING_VERSION, abiVersion: ABI_VERSION });
  });

  it('a newer format is refused: upgrade netwhy', () => {
    const v = RECORDING_VERSION + 1;
    expect(refused(() => decodeCapture(file({ version: v })))).toBe(`recorded by a newer netwhy (format ${v}, this one reads up to ${RECORDING_VERSION}): upgrade netwhy`);
  });

  it('newer records (ABI) are refused: upgrade netwhy', () => {
    const v = ABI_VERSION + 1;
    expect(refused(() => decodeCapture(file({ abiVersion: v })))).toBe(`recorded by a newer netwhy (record ABI ${v}, this one reads up to ${ABI_VERSION}): upgrade netwhy`);
  });

  it('an older format with no upgrade step is refused, saying what this netwhy reads', () => {
    expect(refused(() => decodeCapture(file({ version: 0 })))).toMatch(/no valid 'version' \(0\)/);
    const chain: CompatChain = { ...COMPAT, version: 2 };
    expect(refused(() => compat(raw({ version: 1, abiVersion: ABI_VERSION }), chain))).toBe(
      'recorded by an older netwhy (format 1, this one reads only format 2): replay it with the netwhy that recorded it',
    );
  });

  it.each([
    ['missing', {}, "no valid 'version' (none)"],
    ['a string', { version: '1' }, `no valid 'version' ("1")`],
    ['a fraction', { version: 1.5 }, "no valid 'version' (1.5)"],
  ])('a version that is %s is refused', (_, meta, msg) => {
    expect(refused(() => compat(raw({ abiVersion: ABI_VERSION, ...meta })))).toContain(msg);
  });

  it('a recording without abiVersion is refused', () => {
    expect(refused(() => compat(raw({ version: RECORDING_VERSION })))).toContain("no valid 'abiVersion' (none)");
    expect(refused(() => decodeCapture(file({ abiVersion: undefined })))).toContain("no valid 'abiVersion' (none)");
  });
});

describe('recordings: the upgrade chain', () => {
  // A netwhy at format 3: format 1 called the loss counter `lostEvents`, format 2 added `conntrackBefore`.
  const calls: string[] = [];
  const rename: Upgrade = (c) => {
    calls.push('1→2');
    const { lostEvents, ...rest } = c;
    return { ...rest, lost: lostEvents };
  };
  const addBaseline: Upgrade = (c) => {
    calls.push('2→3');
    return { ...c, conntrackBefore: [] };
  };
  const chain: CompatChain = { version: 3, formats: new Map([[1, rename], [2, addBaseline]]), abiVersion: 1, abis: new Map() };

  it('an older format goes through every step in order, and comes out current', () => {
    calls.length = 0;
    const out = compat(raw({ version: 1, abiVersion: 1, lostEvents: 4 }), chain);
    expect(calls).toEqual(['1→2', '2→3']);
    expect(out).toMatchObject({ version: 3, lost: 4, conntrackBefore: [] });
    expect(out).not.toHaveProperty('lostEvents');
    calls.length = 0;
    expect(compat(raw({ version: 2, abiVersion: 1, lost: 0 }), chain)).toMatchObject({ version: 3, conntrackBefore: [] });
    expect(calls).toEqual(['2→3']);
  });

  it('the current format passes through no step', () => {
    calls.length = 0;
    const c = raw({ version: 3, abiVersion: 1, lost: 0 });
    expect(compat(c, chain)).toEqual(c);
    expect(calls).toEqual([]);
  });

  it('a gap in the chain: formats below it are refused, with the range this netwhy reads', () => {
    const gap: CompatChain = { ...chain, formats: new Map([[2, addBaseline]]) };
    expect(refused(() => compat(raw({ version: 1, abiVersion: 1 }), gap))).toBe(
      'recorded by an older netwhy (format 1, this one reads format 2 to 3): replay it with the netwhy that recorded it',
    );
    expect(compat(raw({ version: 2, abiVersion: 1 }), gap).version).toBe(3);
  });

  it('a step that fails is reported as the upgrade that failed', () => {
    const broken: CompatChain = { ...chain, formats: new Map([[1, () => { throw new Error('no lostEvents'); }], [2, addBaseline]]) };
    expect(refused(() => compat(raw({ version: 1, abiVersion: 1 }), broken))).toBe('upgrading the recording from format 1 to 2 failed: no lostEvents');
  });

  it('older records are rewritten by the ABI steps, after the format steps', () => {
    const order: string[] = [];
    const abi1to2: Upgrade = (c) => {
      order.push('abi');
      return { ...c, records: Uint8Array.from(c.records, (b) => b + 1) };
    };
    const fmt: Upgrade = (c) => (order.push('format'), c);
    const abiChain: CompatChain = { version: 2, formats: new Map([[1, fmt]]), abiVersion: 2, abis: new Map([[1, abi1to2]]) };
    const out = compat({ version: 1, abiVersion: 1, records: Uint8Array.of(1, 2, 3) }, abiChain);
    expect(order).toEqual(['format', 'abi']);
    expect(out).toMatchObject({ version: 2, abiVersion: 2, records: Uint8Array.of(2, 3, 4) });
  });

  it('decodeCapture applies the chain before it checks the fields', () => {
    const upgraded = decodeCapture(file({ version: 1, lost: undefined, lostEvents: 9 }), { ...chain, abiVersion: ABI_VERSION });
    expect(upgraded).toMatchObject({ version: 3, lost: 9, conntrackBefore: [] });
    expect(upgraded.records).toEqual(real.records);
  });
});

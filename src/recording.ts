// A capture on disk: the raw ring buffer records plus everything needed to
// read them elsewhere (drop reason names, symbols, namespace names, state
// snapshots). `netwhy explain --record F` writes one, `--replay F` reads it
// with no privileges; the unit tests explain recorded lab runs this way.
// The format, and how older and newer recordings are treated: docs/json.md.
import { ABI_VERSION } from './abi.js';
import type { K8sFacts } from './model/k8s.js';
import type { Snapshot } from './state/snapshot.js';

const MAGIC = 'NETWHY-RECORDING\n';

/** The recording format this netwhy writes: the file layout and the metadata (docs/json.md). */
export const RECORDING_VERSION = 1;

export interface Capture {
  version: number;
  abiVersion: number;
  kernel: string;
  command?: string[];
  exitCode?: number | null;
  lost: number;
  dropReasons: [number, string][];
  symbols: [string, string, string][]; // hex address, name+offset, function
  netns: [number, string][];
  snapshots: Snapshot[];
  /** conntrack insert_failed per namespace name, before the command ran. */
  conntrackBefore?: [string, number][];
  /** Each namespace's rule counters before the command (iptables-save -c, nft -j list ruleset), so a
   * rule is confirmed by its own counter's growth; absent in older recordings. */
  netfilterBefore?: [string, NetfilterCounters][];
  /** What the Kubernetes name sources said when the capture was made (absent: none was asked). */
  k8s?: K8sFacts;
  records: Uint8Array;
}

export class RecordingError extends Error {}

/** A capture as read from disk, of any format: what an upgrade step takes and gives. */
export type RawCapture = Record<string, unknown> & { records: Uint8Array };

/** One step of an upgrade chain: a capture of format (or record ABI) n in, the same capture as n + 1 out. */
export type Upgrade = (c: RawCapture) => RawCapture;

/**
 * What this netwhy reads, and how older recordings are brought up to it
 * (retis's compat step). `formats.get(n)` turns format n into n + 1 (the
 * metadata); `abis.get(n)` turns records of ABI n (bpf/netwhy.h) into ABI
 * n + 1. A version with no path of steps up to the current one is refused.
 */
export interface CompatChain {
  version: number;
  formats: ReadonlyMap<number, Upgrade>;
  abiVersion: number;
  abis: ReadonlyMap<number, Upgrade>;
}

/** Format 1 and ABI 1 are the first: no upgrades yet. Add a step here when either version is bumped. */
export const COMPAT: CompatChain = { version: RECORDING_VERSION, formats: new Map(), abiVersion: ABI_VERSION, abis: new Map() };

function upgradeOne(c: RawCapture, key: 'version' | 'abiVersion', what: string, current: number, steps: ReadonlyMap<number, Upgrade>): RawCapture {
  const v = c[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new RecordingError(`recording metadata has no valid '${key}' (${JSON.stringify(v) ?? 'none'})`);
  if (v > current) throw new RecordingError(`recorded by a newer netwhy (${what} ${v}, this one reads up to ${current}): upgrade netwhy`);
  let oldest = current;
  while (steps.has(oldest - 1)) oldest--;
  if (v < oldest) {
    const reads = oldest === current ? `only ${what} ${current}` : `${what} ${oldest} to ${current}`;
    throw new RecordingError(`recorded by an older netwhy (${what} ${v}, this one reads ${reads}): replay it with the netwhy that recorded it`);
  }
  let out = c;
  for (let n = v; n < current; n++) {
    try {
      out = { ...steps.get(n)!(out), [key]: n + 1 };
    } catch (e) {
      throw new RecordingError(`upgrading the recording from ${what} ${n} to ${n + 1} failed: ${(e as Error).message}`);
    }
  }
  return out;
}

/**
 * Check a recording's format and record ABI against what this netwhy reads:
 * newer ones are refused (upgrade netwhy), older ones go through the chain.
 */
export function compat(c: RawCapture, chain: CompatChain = COMPAT): RawCapture {
  const formatted = upgradeOne(c, 'version', 'format', chain.version, chain.formats);
  return upgradeOne(formatted, 'abiVersion', 'record ABI', chain.abiVersion, chain.abis);
}

export function encodeCapture(c: Capture): Uint8Array {
  const { records, ...meta } = c;
  const json = Buffer.from(JSON.stringify(meta));
  const head = Buffer.alloc(MAGIC.length + 4);
  head.write(MAGIC, 'latin1');
  head.writeUInt32LE(json.length, MAGIC.length);
  return Buffer.concat([head, json, records]);
}

export function decodeCapture(buf: Uint8Array, chain: CompatChain = COMPAT): Capture {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < MAGIC.length + 4 || b.toString('latin1', 0, MAGIC.length) !== MAGIC) {
    throw new RecordingError('not a netwhy recording (bad magic)');
  }
  const len = b.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4;
  if (start + len > b.length) throw new RecordingError(`recording truncated: metadata says ${len} bytes, ${b.length - start} left`);
  let raw: unknown;
  try {
    raw = JSON.parse(b.toString('utf8', start, start + len));
  } catch (e) {
    throw new RecordingError(`recording metadata is not JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RecordingError('recording metadata is not an object');
  const { records, ...upgraded } = compat({ ...raw, records: new Uint8Array(b.subarray(start + len)) }, chain);
  const meta = upgraded as Omit<Capture, 'records'>;
  for (const k of ['dropReasons', 'symbols', 'netns', 'snapshots'] as const) {
    if (!Array.isArray(meta[k])) throw new RecordingError(`recording metadata lacks '${k}'`);
  }
  if (typeof meta.lost !== 'number') throw new RecordingError("recording metadata lacks 'lost'");
  if (meta.command !== undefined && !(Array.isArray(meta.command) && meta.command.every((a) => typeof a === 'string'))) {
    throw new RecordingError("recording metadata has a malformed 'command'");
  }
  return { ...meta, records };
}

/** A namespace's rules as read before the traced command, for their counters. */
export interface NetfilterCounters {
  iptablesSave?: string | null;
  nftJson?: unknown;
}

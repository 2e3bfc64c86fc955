// A capture on disk: the raw ring buffer records plus everything needed to
// read them elsewhere (drop reason names, symbols, namespace names, state
// snapshots). `netwhy explain --record F` writes one, `--replay F` reads it
// with no privileges; the unit tests explain recorded lab runs this way.
import { ABI_VERSION } from './abi.js';
import type { Snapshot } from './state/snapshot.js';

const MAGIC = 'NETWHY-RECORDING\n';

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
  records: Uint8Array;
}

export class RecordingError extends Error {}

export function encodeCapture(c: Capture): Uint8Array {
  const { records, ...meta } = c;
  const json = Buffer.from(JSON.stringify(meta));
  const head = Buffer.alloc(MAGIC.length + 4);
  head.write(MAGIC, 'latin1');
  head.writeUInt32LE(json.length, MAGIC.length);
  return Buffer.concat([head, json, records]);
}

export function decodeCapture(buf: Uint8Array): Capture {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < MAGIC.length + 4 || b.toString('latin1', 0, MAGIC.length) !== MAGIC) {
    throw new RecordingError('not a netwhy recording (bad magic)');
  }
  const len = b.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4;
  if (start + len > b.length) throw new RecordingError(`recording truncated: metadata says ${len} bytes, ${b.length - start} left`);
  let meta: Omit<Capture, 'records'> | null;
  try {
    meta = JSON.parse(b.toString('utf8', start, start + len));
  } catch (e) {
    throw new RecordingError(`recording metadata is not JSON: ${(e as Error).message}`);
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new RecordingError('recording metadata is not an object');
  if (meta.version !== 1) throw new RecordingError(`recording version ${meta.version} is not supported (1 is)`);
  if (meta.abiVersion !== ABI_VERSION) throw new RecordingError(`recording ABI ${meta.abiVersion} differs from this netwhy's ${ABI_VERSION}`);
  for (const k of ['dropReasons', 'symbols', 'netns', 'snapshots'] as const) {
    if (!Array.isArray(meta[k])) throw new RecordingError(`recording metadata lacks '${k}'`);
  }
  if (typeof meta.lost !== 'number') throw new RecordingError("recording metadata lacks 'lost'");
  if (meta.command !== undefined && !(Array.isArray(meta.command) && meta.command.every((a) => typeof a === 'string'))) {
    throw new RecordingError("recording metadata has a malformed 'command'");
  }
  return { ...meta, records: new Uint8Array(b.subarray(start + len)) };
}

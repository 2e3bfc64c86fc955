// The decoder alone, on one core: records/s from raw ring buffer bytes to
// decoded objects. The batch is recorded from the live storm when the bench
// could trace, else synthesised with the mix a filtered storm produces.
import { ABI_VERSION, AF_INET, LAYOUT, PktFlag, RecordType, probeNamed, decodeBatch } from '../../dist/abi.js';
import type { Row } from './report.js';

function writeHeader(dv: DataView, off: number, type: number, size: number, probe: number, ts: number): void {
  const H = LAYOUT.nw_hdr;
  dv.setUint8(off + H.version, ABI_VERSION);
  dv.setUint8(off + H.type, type);
  dv.setUint16(off + H.size_, size, true);
  dv.setUint16(off + H.probe, probe, true);
  dv.setUint16(off + H.cpu, ts & 1, true);
  dv.setBigUint64(off + H.ts, BigInt(ts), true);
}

function writeAscii(b: Uint8Array, off: number, s: string): void {
  for (let i = 0; i < s.length; i++) b[off + i] = s.charCodeAt(i);
}

function writePkt(b: Uint8Array, dv: DataView, off: number, skb: number, dev: string, ifindex: number, sport: number): void {
  const P = LAYOUT.nw_pkt;
  const T = LAYOUT.nw_tuple;
  dv.setUint32(off + P.skb, skb, true);
  dv.setUint16(off + P.skb + 4, 0x8880, true);
  dv.setUint32(off + P.netns, 4026532246, true);
  dv.setUint32(off + P.ifindex, ifindex, true);
  writeAscii(b, off + P.dev, dev);
  const t = off + P.tuple;
  b.set([10, 199, 251, 1], t + T.saddr);
  b.set([10, 199, 251, 2], t + T.daddr);
  dv.setUint16(t + T.sport, sport, true);
  dv.setUint16(t + T.dport, 9, true);
  b[t + T.proto] = 17;
  b[t + T.family] = AF_INET;
  dv.setUint32(off + P.len, 44, true);
  dv.setUint32(off + P.pid, 4242, true);
  dv.setUint16(off + P.flags, PktFlag.HAS_L4, true);
}

/**
 * Records as a filtered UDP storm across a veth makes them, per datagram:
 * tx in a, rx in b, five route lookups, the drop (with a 6-frame stack).
 */
export function syntheticBatch(bytes = 1 << 20): Uint8Array {
  const per = 2 * LAYOUT.nw_path.size + 5 * LAYOUT.nw_fib.size + LAYOUT.nw_drop.size;
  const n = Math.floor(bytes / per);
  const b = new Uint8Array(n * per);
  const dv = new DataView(b.buffer);
  let off = 0;
  let ts = 3_846_142_808_339; // ns since boot, as after an hour of uptime
  for (let i = 0; i < n; i++) {
    const skb = 0x1000 + i * 0x100;
    const sport = 30000 + (i % 4);
    for (const [type, probe, dev, ifindex] of [
      [RecordType.TX, probeNamed('net_dev_queue').id, 'nwb-va', 2],
      [RecordType.RX, probeNamed('netif_receive_skb').id, 'nwb-vb', 2],
    ] as const) {
      writeHeader(dv, off, type, LAYOUT.nw_path.size, probe, ts++);
      writePkt(b, dv, off + LAYOUT.nw_path.pkt, skb, dev, ifindex, sport);
      off += LAYOUT.nw_path.size;
    }
    const F = LAYOUT.nw_fib;
    for (let k = 0; k < 5; k++) {
      writeHeader(dv, off, RecordType.FIB, F.size, probeNamed('fib_table_lookup').id, ts++);
      dv.setUint32(off + F.skb, skb, true);
      dv.setUint32(off + F.netns, 4026532246, true);
      dv.setUint32(off + F.table, k < 2 ? 255 : 254, true);
      b.set([10, 199, 251, 1], off + F.saddr);
      b.set([10, 199, 251, 2], off + F.daddr);
      dv.setInt32(off + F.err, k === 0 ? -11 : 0, true);
      dv.setUint16(off + F.sport, sport, true);
      dv.setUint16(off + F.dport, 9, true);
      b[off + F.proto] = 17;
      writeAscii(b, off + F.nh_dev, k < 2 ? 'lo' : 'nwb-vb');
      off += F.size;
    }
    const D = LAYOUT.nw_drop;
    writeHeader(dv, off, RecordType.DROP, D.size, probeNamed('kfree_skb').id, ts++);
    writePkt(b, dv, off + D.pkt, skb, 'nwb-vb', 2, sport);
    dv.setBigUint64(off + D.location, 0xffffffff81a0b0c0n, true);
    dv.setUint32(off + D.reason, 2, true);
    dv.setUint32(off + D.stack_len, 6, true);
    for (let k = 0; k < 6; k++) dv.setBigUint64(off + D.stack + k * 8, 0xffffffff81000000n + BigInt(k * 0x1234), true);
    off += D.size;
  }
  // A Buffer, as the addon delivers: the decoder's element accesses then see
  // one receiver type, as in production.
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Decode `batch` over and over for `ms`: records per CPU second of this
 * process (one thread decodes; CPU time, not wall time, because these
 * machines are shared and a busy neighbour would halve a wall-clock figure).
 */
export function decodeRate(batches: Uint8Array[], ms: number): { perSec: number; records: number; mbPerSec: number } {
  const decodeAll = () => batches.reduce((n, b) => n + decodeBatch(b).records.length, 0);
  const records = decodeAll();
  const bytes = batches.reduce((n, b) => n + b.length, 0);
  const warm = Date.now() + Math.min(300, ms / 4);
  while (Date.now() < warm) decodeAll();
  let total = 0;
  let rounds = 0;
  const cpu0 = process.cpuUsage();
  const end = Date.now() + ms;
  while (Date.now() < end) {
    total += decodeAll();
    rounds++;
  }
  const cpu = process.cpuUsage(cpu0);
  const secs = (cpu.user + cpu.system) / 1e6;
  return { perSec: total / secs, records, mbPerSec: (rounds * bytes) / secs / 1e6 };
}

/** recorded: batches as the addon delivered them during the storm (≤ 1 MiB each). */
export function decodeRows(recorded: Uint8Array[], ms: number): Row[] {
  const rows: Row[] = [];
  const target = 1_000_000;
  const cases: [string, Uint8Array[]][] = [];
  if (recorded.length) cases.push(['batches recorded from the storm', recorded]);
  cases.push(['synthetic storm mix', [syntheticBatch()]]);
  for (const [what, bufs] of cases) {
    const r = decodeRate(bufs, ms / cases.length);
    rows.push({
      section: 'decoder (ring buffer bytes → records, per CPU second)',
      metric: `decodeBatch, ${what}`,
      unit: 'rec/s',
      netwhy: r.perSec,
      target: '≥ 1 M rec/s',
      ok: r.perSec >= target,
      note: `${r.records} records in ${bufs.length} batch${bufs.length > 1 ? 'es' : ''} of ${(bufs.reduce((n, b) => n + b.length, 0) / bufs.length / 1024).toFixed(0)} KiB, ${r.mbPerSec.toFixed(0)} MB/s`,
    });
  }
  return rows;
}

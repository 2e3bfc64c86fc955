// The foundation on the real kernel: real namespaces, real packets, real drops.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DropRecord, NwRecord } from '../../src/abi.js';
import { compileFilter } from '../../src/filter/compile.js';
import { kernelDropReasons } from '../../src/kernel/symbols.js';
import { NetnsNames } from '../../src/kernel/netns.js';
import { TraceSession } from '../../src/tracer.js';
import { NetnsPair, eventually, isRoot, netwhyBpfObjects } from '../helpers/netns.js';
import { expectValidTraceLines } from '../helpers/schema.js';

const CLI = resolve(__dirname, '../../dist/cli.js');
const reasons = isRoot() ? kernelDropReasons() : new Map<number, string>();
const reasonOf = (r: DropRecord) => reasons.get(r.reason);

describe.skipIf(!isRoot())('trace on this kernel', () => {
  let pair: NetnsPair;
  const names = new NetnsNames();

  beforeAll(() => {
    pair = new NetnsPair(`nwt${process.pid % 10000}`, 7);
  });
  afterAll(() => pair?.destroy());

  /** Trace with a filter while `act` runs; collect until `done` or 3 s. */
  async function traceWhile(filter: string | null, act: () => void, done: (recs: NwRecord[]) => boolean, ringBytes = 1 << 22, avoidModes: string[] = [], stackAlways = false) {
    const s = await TraceSession.open({ ringBytes, disable: ['sched_process_fork'], avoidModes, stackAlways });
    const recs: NwRecord[] = [];
    try {
      if (filter) s.setFilter(compileFilter(filter, (n) => names.inode(n)).value);
      s.attach();
      s.start((r) => recs.push(...r));
      act();
      await eventually(() => done(recs), 3000);
      await s.stop();
      return { recs, counters: s.counters(), probes: s.probes() };
    } finally {
      s.close();
    }
  }

  const drops = (recs: NwRecord[]) => recs.filter((r): r is DropRecord => r.kind === 'drop');

  it('a closed UDP port: drop NO_SOCKET in namespace b on its veth, with the tuple', async () => {
    const { recs } = await traceWhile(`host ${pair.addrB} and udp port 9`, () => pair.sendUdp(pair.addrB, 9), (r) => drops(r).length > 0);
    const d = drops(recs)[0];
    expect(d, 'no drop event').toBeDefined();
    expect(reasonOf(d)).toBe('NO_SOCKET');
    expect(names.name(d.pkt.netns)).toBe(pair.b);
    expect(d.pkt.dev).toBe(pair.devB);
    expect(d.pkt.tuple).toMatchObject({ src: pair.addrA, dst: pair.addrB, dport: 9, proto: 17 });
    // the same skb was seen leaving a and entering b
    const kinds = recs.filter((r) => r.kind !== 'fib' && r.pkt.skb === d.pkt.skb).map((r) => r.kind);
    expect(kinds).toEqual(expect.arrayContaining(['tx', 'rx', 'drop']));
  });

  it('the raw_tp fallbacks (tp_btf avoided) see the same: every hop, the drop, its reason and (asked for) its stack', async () => {
    const { recs, probes } = await traceWhile(`host ${pair.addrB} and udp port 9`, () => pair.sendUdp(pair.addrB, 9), (r) => drops(r).length > 0, 1 << 22, ['tp_btf'], true);
    const modes = probes.filter((p) => p.attached).map((p) => `${p.probe}:${p.mode}`);
    expect(modes.filter((m) => m.endsWith(':tp_btf')), modes.join(' ')).toEqual([]);
    expect(modes.some((m) => m.endsWith(':raw_tp')), modes.join(' ')).toBe(true);
    const d = drops(recs)[0];
    expect(d, 'no drop event').toBeDefined();
    expect(reasonOf(d)).toBe('NO_SOCKET');
    expect(d.pkt.tuple).toMatchObject({ src: pair.addrA, dst: pair.addrB, dport: 9, proto: 17 });
    expect(d.stack.length).toBeGreaterThan(0);
    const kinds = new Set(recs.filter((r) => r.kind === 'fib' || r.pkt.skb === d.pkt.skb).map((r) => r.kind));
    expect([...kinds].sort()).toEqual(['drop', 'fib', 'rx', 'tx']);
  });

  it('by default a NO_SOCKET drop (its reason says enough) carries no kernel stack', async () => {
    const { recs } = await traceWhile(`host ${pair.addrB} and udp port 9`, () => pair.sendUdp(pair.addrB, 9), (r) => drops(r).length > 0);
    const d = drops(recs)[0];
    expect(reasonOf(d)).toBe('NO_SOCKET');
    expect(d.stack).toEqual([]);
  });

  it('an iptables DROP rule: drop NETFILTER_DROP at the INPUT hook, with the kernel stack that names the hook', async () => {
    pair.exec(pair.b, 'iptables', ['-A', 'INPUT', '-p', 'udp', '--dport', '7777', '-j', 'DROP']);
    try {
      const { recs } = await traceWhile(`udp port 7777`, () => pair.sendUdp(pair.addrB, 7777), (r) => drops(r).length > 0);
      const d = drops(recs)[0];
      expect(reasonOf(d)).toBe('NETFILTER_DROP');
      expect(names.name(d.pkt.netns)).toBe(pair.b);
      expect(d.pkt.tuple.dport).toBe(7777);
      expect(d.stack.length).toBeGreaterThan(0);
    } finally {
      pair.exec(pair.b, 'iptables', ['-F', 'INPUT']);
    }
  });

  it('a packet with no route: the forwarding namespace drops it with IP_INNOROUTES', async () => {
    pair.exec(pair.a, 'ip', ['route', 'add', 'default', 'via', pair.addrB]);
    pair.exec(pair.b, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    try {
      const { recs } = await traceWhile(`host 10.198.0.1`, () => pair.sendUdp('10.198.0.1', 5000), (r) => drops(r).length > 0);
      const d = drops(recs)[0];
      expect(reasonOf(d)).toBe('IP_INNOROUTES');
      expect(names.name(d.pkt.netns)).toBe(pair.b);
      expect(d.pkt.tuple.dst).toBe('10.198.0.1');
      // and the failed lookup in b's tables is there as evidence
      const fails = recs.filter((r) => r.kind === 'fib' && r.dst === '10.198.0.1' && r.err !== 0);
      expect(fails.length).toBeGreaterThan(0);
    } finally {
      pair.exec(pair.a, 'ip', ['route', 'del', 'default']);
      pair.exec(pair.b, 'sysctl', ['-qw', 'net.ipv4.ip_forward=0']);
    }
  });

  it('a filter keeps unrelated traffic out of the ring buffer', async () => {
    const { recs, counters } = await traceWhile(
      `udp and dst port 7001`,
      () => {
        pair.sendUdp(pair.addrB, 7002);
        pair.sendUdp(pair.addrB, 7001);
      },
      (r) => drops(r).length > 0,
    );
    const ports = new Set(recs.flatMap((r) => (r.kind === 'fib' ? [r.dport] : [r.pkt.tuple.dport])));
    expect(ports.has(7001)).toBe(true);
    expect(ports.has(7002)).toBe(false);
    expect(counters.probes.find((p) => p.probe === 'kfree_skb')!.filtered).toBeGreaterThan(0);
  });

  it('a flood into a tiny ring buffer counts lost events instead of hiding them', async () => {
    const { recs, counters } = await traceWhile(`host ${pair.addrB}`, () => pair.floodUdp(pair.addrB, 9, 20000), () => false, 4096);
    expect(counters.lost).toBeGreaterThan(0);
    const perProbe = counters.probes.reduce((n, p) => n + p.lost, 0);
    expect(perProbe).toBe(counters.lost);
    // what was delivered plus what was lost is what the probes saw
    const submitted = counters.probes.reduce((n, p) => n + p.events, 0);
    expect(recs.length).toBe(submitted);
    // and the losses are placed in time: NW_REC_LOST records, ahead of the next record that fit
    // (a loss still pending when the flood ended has no record: only the counters know it)
    const placed = recs.flatMap((r) => (r.kind === 'lost' ? [r] : []));
    expect(placed.reduce((n, r) => n + r.count, 0)).toBeLessThanOrEqual(counters.lost);
    for (const r of placed) expect(r.first).toBeLessThanOrEqual(r.last);
  });

  it('close() leaves no netwhy program or link behind', async () => {
    const s = await TraceSession.open({ ringBytes: 1 << 16 });
    s.attach();
    expect(netwhyBpfObjects().programs.length).toBeGreaterThan(0);
    s.close();
    s.close(); // twice is fine
    expect(await eventually(() => netwhyBpfObjects().programs.length === 0)).toBe(true);
  });

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
    it(`after ${signal} to a tracing process nothing of netwhy remains`, async () => {
      const child = spawn(process.execPath, [CLI, 'trace', '--json', 'host', pair.addrB], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      expect(await eventually(() => netwhyBpfObjects().programs.length > 0, 10_000)).toBe(true);
      // programs load before they attach: send until the first drop shows
      expect(await eventually(() => (pair.sendUdp(pair.addrB, 9), out.includes('"drop"')), 5000)).toBe(true);
      // kernel addresses come out as function+offset (kallsyms is read on a worker thread)
      const drop = out.split('\n').map((l) => (l.includes('"drop"') ? JSON.parse(l) : undefined)).find((e) => e?.drop);
      expect(drop.drop.location).toMatch(/^[A-Za-z_][\w.]*\+0x[0-9a-f]+$/);
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      const t0 = Date.now();
      child.kill(signal);
      const code = await exited;
      expect(Date.now() - t0).toBeLessThan(5000);
      // every line printed (a SIGKILL may cut the last one) is an event, a verdict or the summary
      const lines = expectValidTraceLines(out);
      expect(lines.some((l) => l.type === 'event')).toBe(true);
      if (signal !== 'SIGKILL') {
        expect(code).toBe(0);
        const summary = lines.at(-1) as { type: string; drops: Record<string, number> };
        expect(summary).toMatchObject({ type: 'summary', lost: { ringbuf: 0 } });
        expect(summary.drops.NO_SOCKET).toBeGreaterThan(0);
      }
      expect(await eventually(() => netwhyBpfObjects().programs.length === 0)).toBe(true);
    });
  }
});

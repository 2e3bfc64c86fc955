// Overhead on traffic: iperf3 TCP across the bench's veth pair, untraced, then
// with `netwhy trace` running (a filter that matches nothing, one that matches
// every packet), and bpftrace on the same tracepoints. Modes alternate within
// each round so drift on a shared machine hits them alike; medians are shown.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../dist/native.js';
import { Bpftrace, PRINT_DROP, PRINT_PATH, inNetns } from './bpftrace.js';
import type { BenchEnv } from './env.js';
import type { Row } from './report.js';
import { exited, median, memoryOf, onLines, sleep, spawnTracked, spread, stopChild, until } from './util.js';

const CLI = resolve(PACKAGE_ROOT, 'dist/cli.js');

/** The node flags on the command's first line (#!/usr/bin/env -S node FLAGS): what its users run it with. */
function shebangFlags(path: string): string[] {
  const first = readFileSync(path, 'utf8').split('\n', 1)[0];
  const words = first.replace(/^#!/, '').trim().split(/\s+/);
  return words.slice(words.indexOf('node') + 1);
}

/** netwhy as its users run it (the installed command), with this bench's node: spawn(process.execPath, netwhyArgs(...)). */
export function netwhyArgs(...args: string[]): string[] {
  return [...shebangFlags(CLI), CLI, ...args];
}

export interface OverheadOptions {
  secs: number;
  rounds: number;
}

type Mode = 'untraced' | 'netwhy-none' | 'netwhy-all' | 'bpftrace-none' | 'bpftrace-all';

interface Tracer {
  stop(): Promise<{ events?: number; lost?: number; hwm?: number }>;
}

/** `netwhy trace FILTER` as a user runs it, events to /dev/null; resolves once attached. */
export async function startNetwhyTrace(filter: string[], extra: string[] = []): Promise<{ child: ChildProcess; stop: () => Promise<{ events?: number; lost?: number; hwm?: number; stopped: boolean }> }> {
  const child = spawnTracked(process.execPath, netwhyArgs('trace', ...extra, ...filter), { stdio: ['ignore', 'ignore', 'pipe'] });
  let attached = false;
  let events: number | undefined;
  let lost: number | undefined;
  const err: string[] = [];
  onLines(child.stderr, (l) => {
    if (/^netwhy: tracing /.test(l)) attached = true;
    const e = /^--- netwhy: (\d+) events/.exec(l);
    if (e) events = Number(e[1]);
    const m = /lost \(ring buffer full\): (\d+)/.exec(l);
    if (m) lost = Number(m[1]);
    err.push(l);
  });
  const ok = await until(() => attached || child.exitCode !== null, 15_000);
  if (!ok || !attached) {
    await stopChild(child, 'SIGKILL');
    throw new Error(`netwhy trace did not start: ${err.slice(-3).join(' / ')}`);
  }
  return {
    child,
    stop: async () => {
      const hwm = memoryOf(child.pid ?? 0)?.hwm;
      const stopped = await stopChild(child, 'SIGINT', 5000);
      return { events, lost, hwm, stopped };
    },
  };
}

async function startTracer(env: BenchEnv, mode: Mode): Promise<Tracer | undefined> {
  switch (mode) {
    case 'untraced':
      return undefined;
    case 'netwhy-none':
      return startNetwhyTrace(['host', env.nowhere]);
    case 'netwhy-all':
      return startNetwhyTrace(['host', env.addrB]);
    case 'bpftrace-none':
    case 'bpftrace-all': {
      // inode 1 is no namespace: the predicate is evaluated and never true
      const pred = inNetns(mode === 'bpftrace-all' ? [env.inodeA, env.inodeB] : [1]);
      const bt = await Bpftrace.printer(
        [
          { probe: 'tracepoint:net:netif_receive_skb', action: PRINT_PATH },
          { probe: 'tracepoint:net:net_dev_queue', action: PRINT_PATH },
          { probe: 'tracepoint:skb:kfree_skb', action: PRINT_DROP },
        ],
        pred,
      );
      return {
        stop: async () => {
          await bt.stop();
          return { events: bt.lines.n - 1, lost: bt.lost };
        },
      };
    }
  }
}

/** One iperf3 run (async: bpftrace's output must keep flowing into this process). */
async function iperf(env: BenchEnv, secs: number): Promise<number> {
  const child = env.spawnIn(env.a, 'iperf3', ['-c', env.addrB, '-t', String(secs), '-J']);
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  await exited(child);
  try {
    const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } } };
    return (j.end?.sum_received?.bits_per_second ?? NaN) / 1e9;
  } catch {
    return NaN;
  }
}

const SECTION = 'overhead (iperf3 TCP across the veth, throughput kept vs untraced)';

export async function overheadRows(env: BenchEnv, o: OverheadOptions, log: (s: string) => void): Promise<Row[]> {
  if (!env.tools.iperf3) return [{ section: SECTION, metric: 'iperf3 not installed', unit: '', netwhy: null }];
  const server = env.spawnIn(env.b, 'iperf3', ['-s', '-B', env.addrB]);
  const modes: Mode[] = ['untraced', 'netwhy-none', 'netwhy-all'];
  if (env.tools.bpftrace) modes.push('bpftrace-none', 'bpftrace-all');
  const gbps: Record<Mode, number[]> = { untraced: [], 'netwhy-none': [], 'netwhy-all': [], 'bpftrace-none': [], 'bpftrace-all': [] };
  const traced: Record<string, { events?: number; lost?: number; hwm?: number }[]> = {};
  try {
    await sleep(300);
    for (let round = 0; round < o.rounds; round++) {
      for (const mode of modes) {
        log(`overhead: round ${round + 1}/${o.rounds}, ${mode}`);
        const tracer = await startTracer(env, mode);
        try {
          gbps[mode].push(await iperf(env, o.secs));
        } finally {
          const r = await tracer?.stop();
          if (r) (traced[mode] ??= []).push(r);
        }
      }
    }
  } finally {
    await stopChild(server, 'SIGTERM');
  }
  const base = median(gbps.untraced);
  const rows: Row[] = [{ section: SECTION, metric: 'untraced', unit: 'Gbit/s', netwhy: null, peer: base, peerName: 'untraced', note: `${spread(gbps.untraced)} Gbit/s: ${gbps.untraced.map((g) => g.toFixed(2)).join(', ')}` }];
  const sum = (mode: Mode, k: 'events' | 'lost') => (traced[mode] ?? []).reduce((n, r) => n + (r[k] ?? 0), 0);
  for (const [what, nw, bt, target] of [
    ['filter matches nothing', 'netwhy-none', 'bpftrace-none', 97],
    ['filter matches every packet', 'netwhy-all', 'bpftrace-all', 85],
  ] as const) {
    const n = median(gbps[nw]) / base;
    const p = env.tools.bpftrace ? median(gbps[bt]) / base : null;
    rows.push({
      section: SECTION, metric: `throughput kept, ${what}`, unit: '%',
      netwhy: 100 * n, peer: p === null ? null : 100 * p, peerName: 'bpftrace', ratio: p ? n / p : null,
      target: `≥ ${target} %`, ok: 100 * n >= target,
      note: `netwhy ${spread(gbps[nw].map((g) => (100 * g) / base), (v) => `${v.toFixed(0)} %`)} (${gbps[nw].map((g) => g.toFixed(2)).join(', ')} Gbit/s)` +
        (nw === 'netwhy-all' ? `; netwhy ${sum(nw, 'events')} events, ${sum(nw, 'lost')} lost` : '') +
        (p !== null ? `; bpftrace runs ${gbps[bt].map((g) => g.toFixed(2)).join(', ')}` + (bt === 'bpftrace-all' ? `, ${sum(bt, 'events')} events printed, ${sum(bt, 'lost')} lost (bpftrace has no fib probe here)` : '') : ''),
    });
  }
  // Delivered packets leave no last event: what a trace holds for them is bounded by time and count, not by a drop.
  const hwms = (traced['netwhy-all'] ?? []).flatMap((r) => (r.hwm === undefined ? [] : [r.hwm]));
  if (hwms.length) {
    const h = median(hwms);
    rows.push({
      section: SECTION, metric: 'peak RSS, trace (verdicts on) of every packet of the stream', unit: 'MiB', netwhy: h,
      target: '≤ 100 MiB', ok: h <= 100, note: `${spread(hwms, (v) => `${v.toFixed(0)} MiB`)}; every packet delivered, none dropped`,
    });
  }
  return rows;
}

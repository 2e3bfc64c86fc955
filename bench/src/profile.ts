// `npm run bench -- --profile`: where the time goes under a drop storm. The
// user side is sampled with V8's profiler on the thread that decodes (see
// session-worker.ts); the BPF side is read from kernel.bpf_stats_enabled,
// per program.
import { writeFileSync } from 'node:fs';
import type { BenchEnv } from './env.js';
import { workerSession } from './pipeline.js';
import { Storm } from './storm.js';
import { nsPerRun, progStats, sleep } from './util.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function, largest first. */
export function selfTimes(p: CpuProfile): { fn: string; ms: number; pct: number }[] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const cf = byId.get(id)!.callFrame;
    const where = cf.url ? ` ${cf.url.replace(/^.*\/(dist|node_modules)\//, '')}:${cf.lineNumber + 1}` : '';
    const k = `${cf.functionName || '(anonymous)'}${where}`;
    const dt = p.timeDeltas[i] ?? 0;
    self.set(k, (self.get(k) ?? 0) + dt);
    total += dt;
  });
  return [...self].sort((a, b) => b[1] - a[1]).map(([fn, us]) => ({ fn, ms: us / 1000, pct: (100 * us) / total }));
}

export async function profileStorm(env: BenchEnv, o: { secs: number; senders: number; probes: 'drop' | 'all'; out: string }): Promise<string> {
  const disable = o.probes === 'drop' ? ['netif_receive_skb', 'net_dev_queue', 'fib_table_lookup', 'sched_process_fork'] : ['sched_process_fork'];
  const stats = env.enableBpfStats();
  const before = new Set(progStats().map((p) => p.id));
  const lines: string[] = [];
  let storm: Storm | undefined;
  try {
    const s = await workerSession({ ringBytes: 8 << 20, disable, filter: `host ${env.addrB}`, keepBytes: 0, profile: true });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    storm = new Storm(env, { procs: o.senders, secs: o.secs + 2 });
    await sleep(500);
    const p0 = progStats();
    await sleep(o.secs * 1000);
    const p1 = progStats();
    const bpfSecs = (performance.now() - t0) / 1000 - 0.5;
    await storm.stop();
    const done = await s.stop();
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const c = done.counters;
    writeFileSync(o.out, JSON.stringify(done.profile));
    const records = s.delivered();
    const batches = s.batches();
    lines.push(`profile: ${o.probes === 'drop' ? 'drop probe only' : 'all probes'}, filter host ${env.addrB}, ${o.senders} senders for ${o.secs} s, then the drain`);
    lines.push(`  ${records} records in ${batches} batches (${(records / Math.max(batches, 1)).toFixed(0)} per batch), ${c.lost} lost, ${(secs).toFixed(1)} s from attach to drained`);
    lines.push(`  CPU of this process: ${((cpu.user / 1e6 / secs) * 100).toFixed(0)} % user + ${((cpu.system / 1e6 / secs) * 100).toFixed(0)} % system of one core (decoding thread, the addon's ring buffer thread, the idle main thread)`);
    lines.push('  user side, self time on the decoding thread (V8 sampling profiler):');
    for (const f of selfTimes(done.profile as CpuProfile).slice(0, 18)) lines.push(`    ${f.pct.toFixed(1).padStart(5)} %  ${f.ms.toFixed(0).padStart(6)} ms  ${f.fn}`);
    if (stats) {
      lines.push('  BPF side, per program while the storm ran (kernel.bpf_stats_enabled):');
      for (const p of p1.filter((x) => !before.has(x.id))) {
        const r = nsPerRun(p0, p1, (x) => x.id === p.id);
        if (r.runs) lines.push(`    ${p.name.padEnd(26)} ${String(r.runs).padStart(9)} runs  ${r.ns.toFixed(0).padStart(6)} ns/run  ${((r.ns * r.runs) / 1e7 / bpfSecs).toFixed(1)} % of one CPU`);
      }
    }
    lines.push(`  full profile: ${o.out} (open in Chrome DevTools → Performance)`);
  } finally {
    await storm?.stop();
    env.restoreBpfStats();
  }
  return lines.join('\n');
}

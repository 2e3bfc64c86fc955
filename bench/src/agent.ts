// The agent's footprint over time: `netwhy agent` (drops mode, verdicts, metrics)
// under a drop storm in the bench's namespaces for N minutes, its RSS sampled
// from /proc, /metrics scraped as Prometheus would, then SIGTERM timed.
import type { BenchEnv } from './env.js';
import { netwhyArgs } from './overhead.js';
import type { Row } from './report.js';
import { STORM_PORT, Storm } from './storm.js';
import { memoryOf, onLines, sleep, spawnTracked, stopChild, until } from './util.js';

const SECTION = 'agent (netwhy agent under a drop storm, scraped every second)';

export async function agentRows(env: BenchEnv, o: { minutes: number }, log: (s: string) => void): Promise<Row[]> {
  const child = spawnTracked(process.execPath, netwhyArgs('agent', '--listen', '127.0.0.1:0', 'host', env.addrB), { stdio: ['ignore', 'ignore', 'pipe'] });
  let url = '';
  onLines(child.stderr, (l) => (url ||= /metrics on (http:\S+)/.exec(l)?.[1] ?? ''));
  const storms: Storm[] = [];
  try {
    if (!(await until(() => !!url || child.exitCode !== null, 20_000)) || !url) throw new Error('the agent did not start');
    log(`agent: ${o.minutes} min under a drop storm (2 senders, full rate), RSS sampled every second`);
    const secs = o.minutes * 60;
    storms.push(new Storm(env, { procs: 2, secs: secs + 5, port: STORM_PORT }));
    const t0 = Date.now();
    let hwm = 0;
    let scrapes = 0;
    let slowest = 0;
    let metrics = '';
    while (Date.now() - t0 < secs * 1000 && child.exitCode === null) {
      const s0 = performance.now();
      metrics = await fetch(url, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text(), () => metrics);
      slowest = Math.max(slowest, performance.now() - s0);
      scrapes++;
      hwm = Math.max(hwm, memoryOf(child.pid ?? 0)?.hwm ?? 0);
      await sleep(1000);
    }
    const rss = memoryOf(child.pid ?? 0)?.rss ?? NaN;
    const sum = (re: RegExp) => [...metrics.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
    const drops = sum(/^netwhy_drops_total\{[^}]*\} (\d+)/gm);
    const lost = sum(/^netwhy_events_lost_total\{[^}]*\} (\d+)/gm);
    const shed = sum(/^netwhy_shed_total\{[^}]*\} (\d+)/gm);
    // SIGTERM while the storm still rages, as a node drains under load
    const t1 = performance.now();
    const stopped = await stopChild(child, 'SIGTERM', 5000);
    const sigterm = performance.now() - t1;
    const { sent } = await storms[0].stop();
    const minutes = `${o.minutes} min`;
    return [
      {
        section: SECTION, metric: `agent RSS after ${minutes}`, unit: 'MiB', netwhy: rss, target: '≤ 100 MiB', ok: rss <= 100,
        note: `peak ${hwm.toFixed(0)} MiB; ${sent} datagrams offered, ${drops} drops counted by cause, ${lost} events lost, ${shed} shed; ${scrapes} scrapes, slowest ${slowest.toFixed(0)} ms`,
      },
      { section: SECTION, metric: 'agent SIGTERM → exit, during the storm', unit: 'ms', netwhy: sigterm, target: '< 2000 ms', ok: stopped && sigterm < 2000, note: stopped ? undefined : 'did not stop within 5 s (killed)' },
    ];
  } finally {
    await Promise.all(storms.map((s) => s.stop()));
    await stopChild(child, 'SIGKILL', 1000);
  }
}

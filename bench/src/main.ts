// npm run bench [-- --quick] [--json] [--only a,b] [--profile drop|all]
// netwhy's speed and footprint on this machine, each figure beside a peer
// measured in the same run (absolute numbers drift on shared machines; ratios
// do not). Everything it creates (namespaces nwb-*, tracefs mount, bpf_stats)
// is undone at the end, also on Ctrl-C.
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentRows } from './agent.js';
import { decodeRows } from './decode.js';
import { BenchEnv } from './env.js';
import { explainRows, memoryRows, startupRows } from './latency.js';
import { overheadRows } from './overhead.js';
import { pipelineRows } from './pipeline.js';
import { profileStorm } from './profile.js';
import { type Row, renderTable } from './report.js';

const SECTIONS = ['decode', 'pipeline', 'overhead', 'startup', 'memory', 'explain', 'agent'] as const;
type Section = (typeof SECTIONS)[number];

const USAGE = `usage: npm run bench [-- options]   (node bench/build/main.js [options], after tsc -p bench)

Measures netwhy on this machine, side by side with bpftrace where a peer exists,
inside network namespaces it creates (nwb-a, nwb-b) and removes. Needs root for
everything but the decoder figures. About 5 minutes; --quick about 1.5.

  --quick             shorter runs, one round each
  --json              print one JSON document instead of the table
  --only LIST         some of: ${SECTIONS.join(',')}
  --profile [drop|all]  profile netwhy under a drop storm instead (V8 profile + BPF run time)
  -h, --help          this text`;

interface Args {
  quick: boolean;
  json: boolean;
  only: Set<Section>;
  profile?: 'drop' | 'all';
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, json: false, only: new Set(SECTIONS) };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--quick') a.quick = true;
    else if (v === '--json') a.json = true;
    else if (v === '--only') {
      const list = (argv[++i] ?? '').split(',').filter(Boolean);
      const bad = list.filter((s) => !(SECTIONS as readonly string[]).includes(s));
      if (!list.length || bad.length) throw new Error(`--only takes a list of ${SECTIONS.join(', ')}${bad.length ? ` (not: ${bad.join(', ')})` : ''}`);
      a.only = new Set(list as Section[]);
    } else if (v === '--profile') {
      const next = argv[i + 1];
      a.profile = next === 'drop' || next === 'all' ? (i++, next) : 'all';
    } else if (v === '-h' || v === '--help') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else throw new Error(`unknown option '${v}'`);
  }
  return a;
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`netwhy bench: ${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const root = process.getuid?.() === 0;
  const t0 = Date.now();
  const log = (s: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${s}\n`);
  const q = args.quick;
  // The decoder needs nothing from the machine; everything else needs root and namespaces.
  const env = root && (args.profile || [...args.only].some((s) => s !== 'decode')) ? new BenchEnv() : undefined;
  const notes: string[] = [];
  const rows: Row[] = [];

  if (args.profile) {
    if (!env) {
      process.stderr.write('netwhy bench: --profile needs root (it loads BPF programs)\n');
      return 3;
    }
    try {
      env.setUp();
      log('profiling under a drop storm');
      process.stdout.write((await profileStorm(env, { secs: q ? 3 : 6, senders: 2, probes: args.profile, out: join(tmpdir(), `netwhy-bench-${process.pid}.cpuprofile`) })) + '\n');
    } finally {
      env.teardown();
    }
    return 0;
  }

  let recorded: Uint8Array[] = [];
  let recordedBytes = 0;
  const keep = (b: Uint8Array) => {
    if (recordedBytes >= 4 << 20) return;
    recorded.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    recordedBytes += b.length;
  };
  const section = async (name: Section, fn: () => Promise<Row[]>) => {
    if (!args.only.has(name)) return;
    try {
      rows.push(...(await fn()));
    } catch (e) {
      rows.push({ section: name, metric: `${name} failed`, unit: '', netwhy: null, note: (e as Error).message.split('\n')[0] });
    }
  };

  let eventsPerPacket = 8;
  try {
    if (env) {
      env.setUp();
      await section('pipeline', async () => {
        const r = await pipelineRows(env, { secs: q ? 2 : 4, senders: 2, rounds: q ? 1 : 3 }, keep, log);
        if (Number.isFinite(r.eventsPerPacket)) eventsPerPacket = r.eventsPerPacket;
        return r.rows;
      });
    } else if (!root) {
      notes.push('not root: only the decoder was measured (the rest loads BPF programs and makes namespaces)');
    }
    await section('decode', async () => {
      log('decoder micro-benchmark');
      const batches = recorded;
      recorded = [];
      return decodeRows(batches, q ? 1500 : 4000);
    });
    if (env) {
      await section('overhead', () => overheadRows(env, { secs: q ? 2 : 3, rounds: q ? 1 : 5 }, log));
      await section('startup', () => startupRows(env, { rounds: q ? 2 : 5 }, log));
      await section('memory', () => memoryRows(env, { secs: q ? 4 : 6, eventsPerPacket }, log));
      await section('explain', () => explainRows(env, { rounds: q ? 1 : 3 }, log));
      await section('agent', () => agentRows(env, { minutes: q ? 0.5 : 2 }, log));
      notes.push(...env.notes);
      if (!env.tools.bpftrace) notes.push('bpftrace not found: no peer figures');
    }
  } finally {
    env?.teardown();
  }

  const order = ['decoder', 'pipeline', 'overhead', 'start-up', 'memory', 'explain', 'agent'];
  const rank = (r: Row) => {
    const i = order.findIndex((o) => r.section.startsWith(o));
    return i < 0 ? order.length : i;
  };
  rows.sort((a, b) => rank(a) - rank(b));
  const host = { kernel: release(), cpus: cpus().length, node: process.version };
  const secs = (Date.now() - t0) / 1000;
  if (args.json) {
    process.stdout.write(JSON.stringify({ type: 'netwhy-bench', version: 1, mode: q ? 'quick' : 'full', host, durationSec: Math.round(secs), rows, notes }, null, 2) + '\n');
  } else {
    const head = `netwhy bench (${q ? 'quick' : 'full'}): kernel ${host.kernel}, ${host.cpus} CPUs, node ${host.node}, ${secs.toFixed(0)} s; ratio = netwhy / peer`;
    process.stdout.write(`\n${head}\n\n${renderTable(rows)}\n${notes.length ? `\n${notes.map((n) => `* ${n}`).join('\n')}\n` : ''}`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`netwhy bench: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);

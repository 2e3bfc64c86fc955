// What the benchmarks set up on the machine, and undo: two network namespaces
// joined by a veth pair (the only place bench traffic goes), tracefs for
// bpftrace's tracepoints when it is not mounted, kernel.bpf_stats_enabled.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { killAllChildren, run, spawnTracked, which } from './util.js';

export const NS_PREFIX = 'nwb-';
const TRACEFS = '/sys/kernel/tracing';
const BPF_STATS = '/proc/sys/kernel/bpf_stats_enabled';

export interface Tools {
  bpftrace: boolean;
  iperf3: boolean;
  curl: boolean;
  bpftool: boolean;
}

export class BenchEnv {
  readonly a = `${NS_PREFIX}a`;
  readonly b = `${NS_PREFIX}b`;
  readonly devA = `${NS_PREFIX}va`;
  readonly devB = `${NS_PREFIX}vb`;
  readonly addrA = '10.199.251.1';
  readonly addrB = '10.199.251.2';
  /** An address no bench packet ever goes to: a filter on it matches nothing. */
  readonly nowhere = '192.0.2.1';
  readonly tools: Tools;
  readonly notes: string[] = [];
  inodeA = 0;
  inodeB = 0;
  private nsUp = false;
  private mountedTracefs = false;
  private statsBefore: string | undefined;
  private tornDown = false;

  constructor() {
    this.tools = { bpftrace: which('bpftrace'), iperf3: which('iperf3'), curl: which('curl'), bpftool: which('bpftool') };
    const teardown = () => this.teardown();
    process.once('exit', teardown);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        process.stderr.write(`\nnetwhy bench: ${sig}, cleaning up\n`);
        teardown();
        process.exit(130);
      });
    }
  }

  setUp(): void {
    this.removeNamespaces();
    this.nsUp = true;
    for (const ns of [this.a, this.b]) {
      run('ip', ['netns', 'add', ns]);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    run('ip', ['link', 'add', this.devA, 'netns', this.a, 'type', 'veth', 'peer', 'name', this.devB, 'netns', this.b]);
    run('ip', ['-n', this.a, 'addr', 'add', `${this.addrA}/24`, 'dev', this.devA]);
    run('ip', ['-n', this.b, 'addr', 'add', `${this.addrB}/24`, 'dev', this.devB]);
    run('ip', ['-n', this.a, 'link', 'set', this.devA, 'up']);
    run('ip', ['-n', this.b, 'link', 'set', this.devB, 'up']);
    this.inodeA = statSync(`/run/netns/${this.a}`).ino;
    this.inodeB = statSync(`/run/netns/${this.b}`).ino;
    if (this.tools.bpftrace && !existsSync(`${TRACEFS}/events`)) {
      try {
        run('mount', ['-t', 'tracefs', 'nodev', TRACEFS]);
        this.mountedTracefs = true;
        this.notes.push(`mounted tracefs on ${TRACEFS} for bpftrace's tracepoints (unmounted at the end)`);
      } catch (e) {
        this.notes.push(`could not mount tracefs (${(e as Error).message}); bpftrace columns will be empty`);
        this.tools.bpftrace = false;
      }
    }
  }

  /** Run-time statistics for every BPF program, for per-event cost. */
  enableBpfStats(): boolean {
    try {
      this.statsBefore ??= readFileSync(BPF_STATS, 'utf8').trim();
      writeFileSync(BPF_STATS, '1');
      return true;
    } catch {
      return false;
    }
  }

  restoreBpfStats(): void {
    if (this.statsBefore === undefined) return;
    try {
      writeFileSync(BPF_STATS, this.statsBefore);
    } catch {
      // nothing more to do
    }
    this.statsBefore = undefined;
  }

  /** argv that runs cmd inside a namespace. */
  inNs(ns: string, cmd: string, args: string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', ns, cmd, ...args]];
  }

  spawnIn(ns: string, cmd: string, args: string[], stdio: ('ignore' | 'pipe')[] = ['ignore', 'pipe', 'pipe']) {
    const [c, a] = this.inNs(ns, cmd, args);
    return spawnTracked(c, a, { stdio });
  }

  private removeNamespaces(): void {
    for (const ns of [this.a, this.b]) run('ip', ['netns', 'del', ns], { allowFail: true });
  }

  /** Undo everything; safe to call more than once, also from 'exit'. */
  teardown(): void {
    if (this.tornDown) return;
    this.tornDown = true;
    killAllChildren();
    this.restoreBpfStats();
    if (this.nsUp) this.removeNamespaces();
    if (this.mountedTracefs) run('umount', [TRACEFS], { allowFail: true });
  }
}

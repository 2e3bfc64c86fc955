// bpftrace, the peer: the same tracepoints, counted in the kernel (@n =
// count(), the storm's ground truth) or printed per event (its event pipeline).
import type { ChildProcess } from 'node:child_process';
import { countLines, onLines, spawnTracked, stopChild, until } from './util.js';

/** The predicate "this skb is in network namespace ino" (BTF casts, bpftrace ≥ 0.12). */
export function inNetns(inodes: number[]): string {
  return inodes.map((i) => `((struct sk_buff *)args->skbaddr)->dev->nd_net.net->ns.inum == ${i}`).join(' || ');
}

/** What a printing script prints per event, by tracepoint family. */
export const PRINT_DROP = 'printf("%lx %lx %d %d\\n", args->skbaddr, args->location, args->protocol, args->reason);';
export const PRINT_PATH = 'printf("%lx %d %s\\n", args->skbaddr, args->len, str(args->name));';

export class Bpftrace {
  readonly child: ChildProcess;
  /** Lines seen on stdout (events, for a printing script). */
  readonly lines: { n: number };
  lost = 0;
  /** Latest value printed as `@n: V` (a counting script). */
  count = 0;
  private counted = false;
  readonly errors: string[] = [];

  private constructor(script: string, opts: { counting: boolean; stdout: 'pipe' }) {
    this.child = spawnTracked('bpftrace', ['-e', script], { stdio: ['ignore', opts.stdout, 'pipe'] });
    if (opts.counting) {
      this.lines = { n: 0 };
      onLines(this.child.stdout, (l) => {
        const m = /^@n: (\d+)/.exec(l);
        if (m) {
          this.count = Number(m[1]);
          this.counted = true;
        }
      });
    } else {
      this.lines = countLines(this.child.stdout);
      // "Lost N events" comes on stdout, among the events.
      this.child.stdout?.on('data', (chunk: Buffer) => {
        for (let i = chunk.indexOf('Lost '); i >= 0; i = chunk.indexOf('Lost ', i + 5)) {
          const m = /^Lost (\d+) events/.exec(chunk.toString('latin1', i, i + 40));
          if (m) this.lost += Number(m[1]);
        }
      });
    }
    onLines(this.child.stderr, (l) => {
      const m = /Lost (\d+) events/.exec(l);
      if (m) this.lost += Number(m[1]);
      else if (/ERROR|error/.test(l) && !/RLIMIT_MEMLOCK/.test(l)) this.errors.push(l);
    });
  }

  /** Count matching calls in the kernel; `count` follows every 200 ms. */
  static async counter(probe: string, predicate: string): Promise<Bpftrace> {
    const bt = new Bpftrace(`${probe} /${predicate}/ { @n = count(); } interval:ms:200 { print(@n); }`, { counting: true, stdout: 'pipe' });
    await bt.ready(() => bt.counted);
    return bt;
  }

  /** Print one line per matching event (counted, not kept): `probe /pred/ { action }` per entry. */
  static async printer(probes: { probe: string; action: string }[], predicate: string): Promise<Bpftrace> {
    const script = probes.map((p) => `${p.probe} /${predicate}/ { ${p.action} }`).join('\n');
    const bt = new Bpftrace(script, { counting: false, stdout: 'pipe' });
    // "Attaching N probes..." is printed just before attaching tracepoints,
    // which takes milliseconds: that line plus a margin means attached.
    await bt.ready(() => bt.lines.n >= 1);
    await new Promise((r) => setTimeout(r, 300));
    return bt;
  }

  /** Wait until attached (pred), failing with bpftrace's own error. */
  async ready(pred: () => boolean, ms = 15_000): Promise<void> {
    const ok = await until(() => pred() || this.child.exitCode !== null, ms);
    if (!ok || this.child.exitCode !== null) {
      await stopChild(this.child, 'SIGKILL');
      throw new Error(`bpftrace did not start: ${this.errors.join('; ') || 'timeout'}`);
    }
  }

  pid(): number {
    return this.child.pid ?? 0;
  }

  /** SIGINT (bpftrace prints its maps and exits); the final count is read. */
  async stop(): Promise<void> {
    await stopChild(this.child, 'SIGINT', 5000);
  }
}

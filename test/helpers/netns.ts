// Network namespaces for integration tests: created per test file, always removed.
import { execFileSync, spawn, spawnSync } from 'node:child_process';

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * spawnSync's result without blocking the test worker: a file of long
 * synchronous steps (a minute in all) starves vitest's worker RPC, which then
 * fails the run with "Timeout calling onTaskUpdate".
 */
export function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

const live = new Set<string>();
process.on('exit', () => {
  for (const ns of live) spawnSync('ip', ['netns', 'del', ns]);
});

/**
 * Two namespaces `<p>a` and `<p>b` joined by a veth pair:
 * a: <p>va 10.199.<n>.1/24   b: <p>vb 10.199.<n>.2/24
 */
export class NetnsPair {
  readonly a: string;
  readonly b: string;
  readonly addrA: string;
  readonly addrB: string;
  readonly devA: string;
  readonly devB: string;

  constructor(readonly prefix: string, subnet: number) {
    this.a = `${prefix}a`;
    this.b = `${prefix}b`;
    this.devA = `${prefix}va`;
    this.devB = `${prefix}vb`;
    this.addrA = `10.199.${subnet}.1`;
    this.addrB = `10.199.${subnet}.2`;
    this.destroy();
    for (const ns of [this.a, this.b]) {
      sh('ip', ['netns', 'add', ns]);
      live.add(ns);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    sh('ip', ['link', 'add', this.devA, 'netns', this.a, 'type', 'veth', 'peer', 'name', this.devB, 'netns', this.b]);
    sh('ip', ['-n', this.a, 'addr', 'add', `${this.addrA}/24`, 'dev', this.devA]);
    sh('ip', ['-n', this.b, 'addr', 'add', `${this.addrB}/24`, 'dev', this.devB]);
    sh('ip', ['-n', this.a, 'link', 'set', this.devA, 'up']);
    sh('ip', ['-n', this.b, 'link', 'set', this.devB, 'up']);
  }

  exec(ns: string, cmd: string, args: string[] = []): string {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  /** One UDP datagram from namespace a (bash's /dev/udp: no extra tools). */
  sendUdp(dst: string, port: number): void {
    spawnSync('ip', ['netns', 'exec', this.a, 'bash', '-c', `echo netwhy > /dev/udp/${dst}/${port}`]);
  }

  /** count datagrams from a, as fast as node can send them. */
  floodUdp(dst: string, port: number, count: number): void {
    const js = `const s=require('dgram').createSocket('udp4');let n=0;const b=Buffer.alloc(16);
function f(){for(let i=0;i<500&&n<${count};i++,n++)s.send(b,${port},'${dst}');if(n<${count})setImmediate(f);else setTimeout(()=>s.close(),50);}f();`;
    spawnSync('ip', ['netns', 'exec', this.a, process.execPath, '-e', js]);
  }

  destroy(): void {
    for (const ns of [this.a, this.b]) {
      spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      live.delete(ns);
    }
  }
}

/** Names of loaded BPF programs and link count that belong to netwhy. */
export function netwhyBpfObjects(): { programs: string[] } {
  const progs = JSON.parse(sh('bpftool', ['-j', 'prog', 'show'])) as { name?: string }[];
  // our programs are named <probe>__<attach mode> (bpftool shows full names); bpftrace's are not
  const ours = /__(tp_btf|raw_tp|fentry|fexit|kprobe|kretprobe)$|^nw_(term|clause)_match$/;
  return { programs: progs.map((p) => p.name ?? '').filter((n) => ours.test(n)) };
}

/** Poll until fn() is true (the kernel frees programs after an RCU grace period). */
export async function eventually(fn: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return fn();
}

// The command runner of the snapshots: a deadline must never cost a finished
// command its output. Regression: under emulation the event loop was blocked
// by dozens of spawns; execFile's timer then fired after children had exited
// but before their exit was handled, destroyed the pipes and reported success
// with empty output (every `ip -j` of a namespace "returned" nothing).
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCommand } from '../../src/state/run.js';

/** Pids of this process's children (every thread's), from /proc. */
function children(): number[] {
  return readdirSync('/proc/self/task').flatMap((t) => {
    try {
      return readFileSync(`/proc/self/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true; // already reaped
  }
}

/** Block the event loop until `ms` passed and every child has exited (not yet reaped). */
function blockUntilChildrenExited(ms: number, pids: number[]): void {
  const end = performance.now() + ms;
  while (performance.now() < end || !pids.every(isZombie)) {
    /* busy: this is the point */
  }
}

describe('runCommand', () => {
  it('keeps the output of a command that exited before its late deadline fired', async () => {
    const before = new Set(children());
    const p = runCommand(['sh', '-c', 'printf "%s\\n" "[1,2,3]"'], 20);
    const mine = children().filter((c) => !before.has(c));
    expect(mine.length).toBe(1);
    blockUntilChildrenExited(200, mine); // the 20 ms timer is now long overdue
    const r = await p;
    expect(r).toMatchObject({ ok: true, stdout: '[1,2,3]\n' });
  });

  it('reports a command that outlives its deadline as timed out', async () => {
    const r = await runCommand(['sleep', '5'], 100);
    expect(r.ok).toBe(false);
    expect(r.reason).toBe('sleep 5: timed out after 100 ms');
  });

  it('reports a missing tool, a failing exit and its first stderr line', async () => {
    expect((await runCommand(['netwhy-no-such-tool'], 1000)).reason).toBe('netwhy-no-such-tool: not installed');
    const r = await runCommand(['sh', '-c', 'echo first >&2; echo second >&2; exit 3'], 5000);
    expect(r).toMatchObject({ ok: false, reason: 'sh -c echo first >&2; echo second >&2; exit 3: exit 3: first' });
  });

  it('runs many commands at once, each with its whole output', async () => {
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => runCommand(['sh', '-c', `seq ${i * 1000}`], 10_000)));
    rs.forEach((r, i) => {
      expect(r.ok).toBe(true);
      expect(r.stdout.split('\n').length - 1).toBe(i * 1000);
    });
  });
});

describe('runCommand and grandchildren', () => {
  it('a timed-out command whose grandchild holds its pipes is reported timed out without waiting for the grandchild (31 s)', async () => {
    const t0 = performance.now();
    try {
      const r = await runCommand(['sh', '-c', 'sleep 31.25 & sleep 31.25'], 200);
      expect(r).toMatchObject({ ok: false, reason: 'sh -c sleep 31.25 & sleep 31.25: timed out after 200 ms' });
      // the deadline plus the 1 s grace, not the grandchild's 31 s (a liveness bound, wide on purpose)
      expect(performance.now() - t0).toBeLessThan(15_000);
    } finally {
      spawnSync('pkill', ['-f', 'sleep 31.25']);
    }
  });
});

describe('runCommand from the compiled code (npm run build)', () => {
  it('runs commands on its worker thread, each with its whole output and its failure reason', async () => {
    // dist, not src: the worker thread loads compiled JavaScript (from the sources commands run in-thread)
    const run = (await import('../../dist/state/run.js')) as typeof import('../../src/state/run.js');
    const rs = await Promise.all([...Array(8).keys()].map((i) => run.runCommand(['sh', '-c', `seq 1 ${1000 + i}`], 5000)));
    rs.forEach((r, i) => expect(r.stdout.trim().split('\n')).toHaveLength(1000 + i));
    expect(run.offThread()).toBe(true);
    const bad = await run.runCommand(['sh', '-c', 'echo nope >&2; exit 3'], 5000);
    expect(bad).toMatchObject({ ok: false, reason: 'sh -c echo nope >&2; exit 3: exit 3: nope' });
  });

  it('lets an idle runner go (its thread ends) and starts another for the next command', async () => {
    const run = (await import('../../dist/state/run.js')) as typeof import('../../src/state/run.js');
    const threads = () => readdirSync('/proc/self/task').length;
    expect((await run.runCommand(['sh', '-c', 'echo one'], 5000)).stdout).toBe('one\n');
    const busy = threads();
    await new Promise((r) => setTimeout(r, run.RUNNER_IDLE_MS + 500));
    expect(threads()).toBeLessThan(busy);
    expect((await run.runCommand(['sh', '-c', 'echo two'], 5000)).stdout).toBe('two\n');
    expect(threads()).toBe(busy);
  });
});

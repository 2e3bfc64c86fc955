// Commands for the state readers (ip, iptables-save, nft, sysctl, ctr, ...),
// run off the event loop. spawn() blocks its thread until the child has
// exec'd: with the CPUs busy (a storm, a benchmark) that is tens of
// milliseconds per command, and a snapshot runs a dozen. On the main thread
// that stalls the draining of the ring buffer (events lost); so the main
// thread hands commands to a worker thread, which spawns them.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread } from 'node:worker_threads';

export interface RunResult {
  ok: boolean;
  stdout: string;
  stderr: string;
  /** Why it failed, for `errors`. */
  reason?: string;
}

const MAX_OUTPUT = 512 * 1024 * 1024;

/** At most this many snapshot commands run at once, over every snapshot taken concurrently. */
const MAX_PROCS = 6;
let running = 0;
const waiting: (() => void)[] = [];

async function slot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_PROCS) await new Promise<void>((r) => waiting.push(r));
  else running++;
  try {
    return await fn();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

/**
 * Run a command and collect its output. Unlike execFile's `timeout`, the deadline never costs a
 * finished command its output: spawn() blocks the event loop (seconds, for dozens of processes
 * under emulation), so a timer can fire after the child exited but before its exit was handled;
 * execFile then destroys the pipes and reports success with empty output. Here the deadline only
 * sends SIGKILL, the pipes are read to the end, and a child that exited 0 on its own counts as
 * done whatever the timer did.
 */
export function runHere(argv: string[], timeoutMs: number): Promise<RunResult> {
  return slot(
    () =>
      new Promise<RunResult>((resolve) => {
        const cmd = argv.join(' ');
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let size = 0;
        let tooLarge = false;
        let spawnError: NodeJS.ErrnoException | undefined;
        const child = spawn(argv[0]!, argv.slice(1), {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        let grace: NodeJS.Timeout | undefined;
        const collect = (into: Buffer[]) => (d: Buffer) => {
          size += d.length;
          if (size > MAX_OUTPUT) {
            tooLarge = true;
            child.kill('SIGKILL');
          } else into.push(d);
        };
        // Without pipes (EMFILE and the like) there is only the 'error' event.
        child.stdout?.on('data', collect(out));
        child.stderr?.on('data', collect(err));
        child.on('error', (e) => (spawnError = e));
        // A grandchild (sh -c '... ipvsadm') may hold the pipes after the child
        // is gone: give it a moment, then stop reading so 'close' comes.
        child.on('exit', () => {
          grace = setTimeout(() => {
            child.stdout?.destroy();
            child.stderr?.destroy();
          }, 1000);
        });
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          clearTimeout(grace);
          const stdout = Buffer.concat(out).toString('utf8');
          const stderr = Buffer.concat(err).toString('utf8');
          if (!spawnError && !tooLarge && code === 0) return resolve({ ok: true, stdout, stderr });
          const firstErr = stderr.trim().split('\n')[0] ?? '';
          let reason: string;
          if (spawnError?.code === 'ENOENT') reason = `${argv[0]}: not installed`;
          else if (spawnError) reason = `${cmd}: ${spawnError.message.split('\n')[0]}`;
          else if (tooLarge) reason = `${cmd}: output too large`;
          else if (signal === 'SIGKILL') reason = `${cmd}: timed out after ${timeoutMs} ms`;
          else if (signal) reason = `${cmd}: killed by ${signal}`;
          else reason = `${cmd}: exit ${code}${firstErr ? `: ${firstErr}` : ''}`;
          resolve({ ok: false, stdout, stderr, reason });
        });
      }),
  );
}

const WORKER_URL = new URL('./run-worker.js', import.meta.url);
/**
 * An idle runner is let go after this long: a thread with its own V8 heap
 * (~10 MB) is worth keeping between the commands of one snapshot, not for
 * the minutes between snapshots of a long trace.
 */
export const RUNNER_IDLE_MS = 3000;
let worker: Worker | undefined;
let idle: NodeJS.Timeout | undefined;
let seq = 0;
const pending = new Map<number, (r: RunResult) => void>();

/** Let the runner go once nothing has been asked of it for RUNNER_IDLE_MS. */
function idleOut(w: Worker): void {
  clearTimeout(idle);
  idle = setTimeout(() => {
    if (worker !== w || pending.size) return;
    worker = undefined;
    void w.terminate();
  }, RUNNER_IDLE_MS).unref();
}

function runner(): Worker | undefined {
  if (worker) {
    idleOut(worker);
    return worker;
  }
  // From the TypeScript sources (tests) there is no compiled worker: run here.
  if (!existsSync(fileURLToPath(WORKER_URL))) return undefined;
  const w = new Worker(WORKER_URL);
  w.on('message', ({ id, result }: { id: number; result: RunResult }) => {
    pending.get(id)?.(result);
    pending.delete(id);
    if (pending.size) return;
    w.unref(); // idle: never what keeps the process alive
    idleOut(w);
  });
  w.on('error', (e) => {
    for (const done of pending.values()) done({ ok: false, stdout: '', stderr: '', reason: `command runner failed: ${e.message}` });
    pending.clear();
    if (worker === w) worker = undefined;
  });
  w.unref();
  idleOut(w);
  return (worker = w);
}

/** Whether commands run on the worker thread (false from the TypeScript sources, and on it). */
export function offThread(): boolean {
  return isMainThread && runner() !== undefined;
}

/** Run a command (at most MAX_PROCS at a time) and collect its output; never throws. */
export function runCommand(argv: string[], timeoutMs: number): Promise<RunResult> {
  const w = isMainThread ? runner() : undefined;
  if (!w) return runHere(argv, timeoutMs);
  const id = ++seq;
  w.ref();
  return new Promise((resolve) => {
    pending.set(id, resolve);
    w.postMessage({ id, argv, timeoutMs });
  });
}

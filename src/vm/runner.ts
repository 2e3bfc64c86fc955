// Runs a command inside a microVM booted from the Debian kernel package, for the
// tests the host kernel cannot run (IPVS, kprobes). The guest sees the host's
// root read-only (9p + overlay with a tmpfs upper), so it runs the host's node,
// the built addon and BPF objects and tools such as ipvsadm unchanged.
//
// The guest has its own /tmp, /run, /dev, /proc and /sys, which hide the host's.
// So that a checkout works wherever it lives (a CI clone under /tmp, say), two
// more 9p shares are mounted at their host paths, after those:
//   - the command's working directory, read-write: what the command writes
//     there is on the host afterwards (not shared when it is /);
//   - the repository (this runner's, with dist/ and node_modules/) when the
//     guest would not see it otherwise (under /tmp or /run) and it is not inside
//     the working directory: read-only under an overlay with a tmpfs upper, like
//     the rest of the host root.
// Paths are the same on both sides (symlinks resolved on the host).
//
// vm/prepare.sh downloads and unpacks the kernel and builds the initramfs (cached
// under NETWHY_VM_CACHE, default <repo>/.vm); vm/initramfs-init.sh mounts the
// shares and switch_roots; vm/guest-init.sh runs the command and powers off.
// Each run gets a directory under <cache>/runs shared read-write with the guest
// (at /run/netwhy): the command and the list of extra shares go in, stdout,
// stderr and the exit code come out, and the serial console is logged there
// (console-<accel>.log, with qemu-<accel>.stderr) for diagnostics. The last 10
// run directories are kept. The cache may be anywhere, /tmp included: the guest
// reads it only through its own shares.
//
// vmUnavailableReason() says from local facts only (qemu, host tools, cache)
// whether the microVM can be used; prepareVm() does the work, download included.
//
// Environment knobs:
//   NETWHY_VM_CACHE          cache directory (default <repo>/.vm)
//   NETWHY_VM_KERNEL_PKG     kernel package (default: what linux-image-amd64 depends on)
//   NETWHY_VM_OFFLINE=1      never download: use a kernel already in the cache (or say
//                            the microVM is unavailable when there is none)
//   NETWHY_VM_ACCEL          kvm | tcg: skip detection
//   NETWHY_VM_QEMU           qemu binary (default qemu-system-x86_64 from PATH)
//   NETWHY_VM_BOOT_TIMEOUT_MS  deadline to reach the command under TCG (default 120000)
//   NETWHY_VM_KVM_PROBE_MS   deadline for a KVM boot before falling back (default 20000)
//   NETWHY_VM_NO_PVH=1       boot the compressed vmlinuz instead of the extracted vmlinux
//   NETWHY_VM_TRACE=1        the guest prints timestamps of its setup steps on the console

import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsc, createWriteStream, existsSync } from 'node:fs';
import { access, copyFile, mkdir, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface VmRunOptions {
  command: string[];
  /**
   * Working directory (default process.cwd()): an existing host directory, anywhere
   * (under /tmp too), shared read-write with the guest at the same path (symlinks
   * resolved), so files the command writes there are on the host afterwards.
   * Not shared when it is /; not one of the guest's own mount points (/tmp, /run)
   * or under /proc, /sys, /dev.
   */
  cwd?: string;
  /** Added to a clean environment (PATH, HOME=/root, NETWHY_IN_VM=1). */
  env?: Record<string, string>;
  /** Deadline for one boot plus the command (default 300000). */
  timeoutMs?: number;
  memoryMb?: number;
  cpus?: number;
  /** modprobe before running, e.g. ['ip_vs','ip_vs_rr'] */
  modules?: string[];
}

export interface VmRunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** uname -r inside */
  kernel: string;
  accel: 'kvm' | 'tcg';
  /** qemu start to the command start */
  bootMs: number;
  /** the whole runInVm call, prepare included */
  totalMs: number;
}

export interface PreparedVm {
  kernelVersion: string;
  vmlinuz: string;
  /** The uncompressed kernel with a PVH entry, when it could be extracted: boots seconds faster under TCG. */
  vmlinux?: string;
  initrd: string;
  modulesDir: string;
}

export type VmErrorKind =
  | 'bad-options'
  | 'qemu-missing'
  | 'tool-missing'
  | 'kernel-missing'
  | 'prepare-failed'
  | 'boot-timeout'
  | 'timeout'
  | 'modprobe-failed'
  | 'guest-failed';

export class VmError extends Error {
  constructor(
    message: string,
    readonly kind: VmErrorKind = 'guest-failed',
    /** The run directory (console.log, qemu.stderr, stdout, stderr) when there was one. */
    readonly runDir?: string,
  ) {
    super(message);
    this.name = 'VmError';
  }
}

type Accel = 'kvm' | 'tcg';

const here = dirname(fileURLToPath(import.meta.url));
/** src/vm/runner.ts and dist/vm/runner.js are both two levels below the repository. */
const repoRoot = resolve(here, '..', '..');
const vmDir = join(repoRoot, 'vm');

const DEFAULT_TIMEOUT_MS = 300_000;
const KEEP_RUNS = 10;
const READY = 'NETWHY_READY';
const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function vmCacheDir(): string {
  return resolve(process.env.NETWHY_VM_CACHE || join(repoRoot, '.vm'));
}

function envInt(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

// ---------------------------------------------------------------------------
// prepare

let prepared: { key: string; promise: Promise<PreparedVm> } | undefined;

/** Downloads/unpacks the kernel and builds the initramfs unless cached. */
export function prepareVm(): Promise<PreparedVm> {
  const key = `${vmCacheDir()}\0${process.env.NETWHY_VM_KERNEL_PKG ?? ''}`;
  if (!prepared || prepared.key !== key) {
    const promise = runPrepare();
    prepared = { key, promise };
    promise.catch(() => {
      if (prepared?.promise === promise) prepared = undefined;
    });
  }
  return prepared.promise;
}

/** vm/prepare.sh, with a VmError for a non-zero exit (2: tool-missing, 3: kernel-missing). */
async function prepareScript(args: string[], what: string): Promise<string> {
  const script = join(vmDir, 'prepare.sh');
  if (!existsSync(script)) throw new VmError(`${script} is missing`, 'prepare-failed');
  const { code, stdout, stderr } = await collect('bash', [script, ...args], { ...process.env, NETWHY_VM_CACHE: vmCacheDir() });
  if (code !== 0) {
    const errLines = stderr.split('\n').filter((l) => l.includes('error:'));
    const msg = (errLines.length ? errLines.join('\n') : tail(stderr, 15)).replace(/^prepare: error: /gm, '');
    const kind: VmErrorKind = code === 2 ? 'tool-missing' : code === 3 ? 'kernel-missing' : 'prepare-failed';
    throw new VmError(`${what}: ${msg.trim()}`, kind);
  }
  return stdout;
}

async function runPrepare(): Promise<PreparedVm> {
  const stdout = await prepareScript([], 'preparing the microVM failed');
  const kv = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) kv.set(m[1]!, m[2]!);
  }
  const get = (k: string): string => {
    const v = kv.get(k);
    if (!v) throw new VmError(`vm/prepare.sh printed no ${k}`, 'prepare-failed');
    return v;
  };
  return {
    kernelVersion: get('KERNEL_VERSION'),
    vmlinuz: get('VMLINUZ'),
    ...(kv.get('VMLINUX') ? { vmlinux: kv.get('VMLINUX') } : {}),
    initrd: get('INITRD'),
    modulesDir: get('MODULES_DIR'),
  };
}

function collect(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

// ---------------------------------------------------------------------------
// host checks

async function which(name: string): Promise<string | undefined> {
  if (name.includes('/')) return (await isExecutable(name)) ? name : undefined;
  for (const d of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/usr/bin'])) {
    if (d && (await isExecutable(join(d, name)))) return join(d, name);
  }
  return undefined;
}

async function isExecutable(p: string): Promise<boolean> {
  try {
    await access(p, fsc.X_OK);
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

async function findQemu(): Promise<string> {
  const name = process.env.NETWHY_VM_QEMU || 'qemu-system-x86_64';
  const q = await which(name);
  if (!q) throw new VmError(`${name} not found: apt-get install qemu-system-x86`, 'qemu-missing');
  return q;
}

/**
 * Null when the microVM can be used here, else what is missing (for skipping
 * tests). Local facts only, quick, no network: qemu, the tools vm/prepare.sh
 * needs, a writable cache, and a prepared kernel or the means to download one
 * (apt-get, unless NETWHY_VM_OFFLINE=1). It does not prepare: prepareVm() does
 * (runInVm calls it), and its failures, a failed download included, are errors.
 */
export async function vmUnavailableReason(): Promise<string | null> {
  try {
    await findQemu();
    await prepareScript(['--check'], 'the microVM cannot be prepared here');
    return null;
  } catch (e) {
    if (e instanceof VmError && e.kind !== 'prepare-failed') return e.message;
    throw e;
  }
}

// ---------------------------------------------------------------------------
// accelerator choice

const accelFile = (): string => join(vmCacheDir(), 'accel.json');

async function accelKey(qemu: string, kernelVersion: string): Promise<string> {
  return `${release()}|${qemu}|${kernelVersion}`;
}

async function readAccel(key: string): Promise<Accel | undefined> {
  try {
    const all = JSON.parse(await readFile(accelFile(), 'utf8')) as Record<string, { accel?: Accel }>;
    const a = all[key]?.accel;
    return a === 'kvm' || a === 'tcg' ? a : undefined;
  } catch {
    return undefined;
  }
}

async function writeAccel(key: string, accel: Accel, note: string): Promise<void> {
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(await readFile(accelFile(), 'utf8')) as Record<string, unknown>;
  } catch {
    /* first entry */
  }
  all[key] = { accel, note, checked: new Date().toISOString() };
  await writeFile(accelFile(), JSON.stringify(all, null, 2) + '\n');
}

async function kvmUsable(): Promise<boolean> {
  try {
    await access('/dev/kvm', fsc.R_OK | fsc.W_OK);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// qemu processes: never leave one behind

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

// One VM at a time per process: the machines have two shared cores.
let queue: Promise<unknown> = Promise.resolve();
function serialized<T>(fn: () => Promise<T>): Promise<T> {
  const next = queue.then(fn, fn);
  queue = next.catch(() => undefined);
  return next;
}

// ---------------------------------------------------------------------------
// the host directories the guest gets at their own paths

/** Mounted by the guest over the host root's view: the host's are hidden there. */
const GUEST_TMPFS = ['/tmp', '/run'];
const GUEST_KERNEL_FS = ['/proc', '/sys', '/dev'];
/** where the guest mounts the run directory */
const GUEST_RUN_SHARE = '/run/netwhy';

const isUnder = (p: string, dir: string): boolean => {
  const rel = relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
};

/** The working directory as the guest will see it: an existing host directory, symlinks resolved. */
async function guestCwd(dir: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(resolve(dir));
    if (!(await stat(real)).isDirectory()) throw new Error('not a directory');
  } catch (e) {
    throw new VmError(`runInVm: cwd ${dir} is not a directory on the host (${(e as Error).message})`, 'bad-options');
  }
  if (/[\n\0]/.test(real)) throw new VmError(`runInVm: cwd ${JSON.stringify(real)} has a newline in it`, 'bad-options');
  if (GUEST_TMPFS.includes(real)) {
    throw new VmError(`runInVm: cwd ${real} is where the guest mounts its own tmpfs; use a directory below it`, 'bad-options');
  }
  const own = [...GUEST_KERNEL_FS, GUEST_RUN_SHARE].find((d) => isUnder(real, d));
  if (own) throw new VmError(`runInVm: cwd ${real} is under ${own}, which the guest mounts itself`, 'bad-options');
  return real;
}

interface Share {
  /** 9p mount tag */
  tag: string;
  /** rw: read-write; ro: read-only under an overlay with a tmpfs upper */
  mode: 'rw' | 'ro';
  /** on the host, and where the guest mounts it */
  path: string;
}

/** The shares vm/initramfs-init.sh mounts at their host paths, outer first. */
async function extraShares(cwd: string): Promise<Share[]> {
  const shares: Share[] = [];
  const repo = await realpath(repoRoot);
  const repoHidden = GUEST_TMPFS.some((d) => isUnder(repo, d));
  if (repoHidden && (cwd === '/' || !isUnder(repo, cwd))) shares.push({ tag: 'netwhyrepo', mode: 'ro', path: repo });
  if (cwd !== '/') shares.push({ tag: 'netwhycwd', mode: 'rw', path: cwd });
  return shares;
}

// ---------------------------------------------------------------------------
// run

interface BootOutcome {
  /** ms from spawn to NETWHY_READY, if seen */
  readyMs?: number;
  /** 'boot' if killed for not reaching the command in time, 'run' for the overall deadline */
  killed?: 'boot' | 'run';
  code: number | null;
  signal: NodeJS.Signals | null;
  consoleTail: string;
  qemuStderr: string;
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Commas separate qemu sub-options; a literal one is doubled. */
function qemuEscape(s: string): string {
  return s.replace(/,/g, ',,');
}

function tail(text: string, lines: number): string {
  return text.split('\n').filter((l) => l.trim() !== '').slice(-lines).join('\n');
}

export function runInVm(opts: VmRunOptions): Promise<VmRunResult> {
  return serialized(() => runOnce(opts));
}

async function runOnce(opts: VmRunOptions): Promise<VmRunResult> {
  const t0 = Date.now();
  if (!Array.isArray(opts.command) || opts.command.length === 0) throw new VmError('runInVm: empty command', 'bad-options');
  const cwd = await guestCwd(opts.cwd ?? process.cwd());
  for (const k of Object.keys(opts.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new VmError(`runInVm: bad environment variable name ${JSON.stringify(k)}`, 'bad-options');
  }
  for (const m of opts.modules ?? []) {
    if (!/^[A-Za-z0-9_-]+$/.test(m)) throw new VmError(`runInVm: bad module name ${JSON.stringify(m)}`, 'bad-options');
  }
  const qemu = await findQemu();
  const vm = await prepareVm();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  const runsDir = join(vmCacheDir(), 'runs');
  await mkdir(runsDir, { recursive: true });
  const runDir = join(runsDir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  await mkdir(runDir);
  await pruneRuns(runsDir);

  const env: Record<string, string> = {
    PATH: `${GUEST_PATH}:${dirname(process.execPath)}`,
    HOME: '/root',
    NETWHY_IN_VM: '1',
    ...opts.env,
  };
  const script = [
    '# written by src/vm/runner.ts',
    `cd ${shq(cwd)} || exit 126`,
    ...Object.entries(env).map(([k, v]) => `export ${k}=${shq(v)}`),
    `exec ${opts.command.map(shq).join(' ')}`,
    '',
  ].join('\n');
  await writeFile(join(runDir, 'cmd.sh'), script);
  const shares = await extraShares(cwd);
  // read by vm/initramfs-init.sh: "<tag> <rw|ro> <path>", mounted in this order
  await writeFile(join(runDir, 'shares'), shares.map((s) => `${s.tag} ${s.mode} ${s.path}\n`).join(''));
  await writeFile(join(runDir, 'modules'), (opts.modules ?? []).join('\n') + ((opts.modules ?? []).length ? '\n' : ''));
  await copyFile(join(vmDir, 'guest-init.sh'), join(runDir, 'guest-init.sh'));
  if (process.env.NETWHY_VM_TRACE === '1') await writeFile(join(runDir, 'trace'), '');

  const key = await accelKey(qemu, vm.kernelVersion);
  const forced = process.env.NETWHY_VM_ACCEL;
  let accel: Accel;
  if (forced === 'kvm' || forced === 'tcg') accel = forced;
  else accel = (await readAccel(key)) ?? ((await kvmUsable()) ? 'kvm' : 'tcg');
  const probing = forced !== 'kvm' && accel === 'kvm';

  const memoryMb = opts.memoryMb ?? 2048;
  const cpus = opts.cpus ?? 2;
  const tcgBootMs = Math.min(timeoutMs, envInt('NETWHY_VM_BOOT_TIMEOUT_MS', 120_000));
  let out = await boot({
    qemu, vm, runDir, shares, accel, memoryMb, cpus, timeoutMs,
    bootTimeoutMs: probing ? Math.min(timeoutMs, envInt('NETWHY_VM_KVM_PROBE_MS', 20_000)) : tcgBootMs,
  });
  if (probing) {
    // A guest that wrote an exit code booted fine (e.g. modprobe failed before the command).
    if (out.readyMs === undefined && !existsSync(join(runDir, 'exit_code'))) {
      const why = out.killed ? 'boot deadline' : `qemu exit ${out.code ?? out.signal}: ${tail(out.qemuStderr, 2).replace(/\n/g, ' | ')}`;
      await writeAccel(key, 'tcg', `KVM did not reach the command (${why}); using TCG`);
      accel = 'tcg';
      out = await boot({ qemu, vm, runDir, shares, accel, memoryMb, cpus, timeoutMs, bootTimeoutMs: tcgBootMs });
    } else if (forced === undefined) {
      await writeAccel(key, 'kvm', 'KVM booted to the command');
    }
  }

  const read = (f: string): Promise<string | undefined> => readFile(join(runDir, f), 'utf8').catch(() => undefined);
  const [exitText, stdout, stderr, kernel, modprobeErr] = await Promise.all([
    read('exit_code'), read('stdout'), read('stderr'), read('kernel'), read('modprobe.err'),
  ]);
  const diag = (): string =>
    `\n--- last console lines (${join(runDir, `console-${accel}.log`)}) ---\n${out.consoleTail || '(nothing)'}` +
    (out.qemuStderr.trim() ? `\n--- qemu stderr ---\n${tail(out.qemuStderr, 10)}` : '');

  if (out.readyMs === undefined) {
    if (exitText?.trim() === '125' && modprobeErr !== undefined) {
      throw new VmError(`modprobe ${(opts.modules ?? []).join(' ')} failed in the guest (${vm.kernelVersion}): ${modprobeErr.trim()}`, 'modprobe-failed', runDir);
    }
    if (out.killed) {
      throw new VmError(`microVM (${accel}) did not reach the command within ${out.killed === 'boot' ? (accel === 'tcg' ? tcgBootMs : timeoutMs) : timeoutMs} ms${diag()}`, 'boot-timeout', runDir);
    }
    throw new VmError(`microVM (${accel}) stopped before running the command (qemu exit ${out.code ?? out.signal})${diag()}`, 'guest-failed', runDir);
  }
  if (out.killed) {
    throw new VmError(
      `command ${JSON.stringify(opts.command)} timed out after ${timeoutMs} ms in the microVM` +
        `\n--- stdout ---\n${tail(stdout ?? '', 20)}\n--- stderr ---\n${tail(stderr ?? '', 20)}${diag()}`,
      'timeout', runDir,
    );
  }
  const exitCode = Number(exitText?.trim());
  if (exitText === undefined || !Number.isInteger(exitCode)) {
    throw new VmError(`the microVM powered off without an exit code (qemu exit ${out.code ?? out.signal})${diag()}`, 'guest-failed', runDir);
  }
  return {
    exitCode,
    stdout: stdout ?? '',
    stderr: stderr ?? '',
    kernel: (kernel ?? '').trim(),
    accel,
    bootMs: out.readyMs,
    totalMs: Date.now() - t0,
  };
}

interface BootArgs {
  qemu: string;
  vm: PreparedVm;
  runDir: string;
  shares: Share[];
  accel: Accel;
  memoryMb: number;
  cpus: number;
  timeoutMs: number;
  bootTimeoutMs: number;
}

async function boot(a: BootArgs): Promise<BootOutcome> {
  for (const f of ['exit_code', 'exit_code.tmp', 'stdout', 'stderr', 'kernel', 'modprobe.err', 'ready_uptime']) {
    await rm(join(a.runDir, f), { force: true });
  }
  const qargs = [
    '-name', 'netwhy-vm',
    ...(a.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
    '-m', String(a.memoryMb),
    '-smp', String(a.cpus),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-serial', 'stdio',
    '-kernel', a.vm.vmlinux && process.env.NETWHY_VM_NO_PVH !== '1' ? a.vm.vmlinux : a.vm.vmlinuz,
    '-initrd', a.vm.initrd,
    '-append', 'console=ttyS0 quiet panic=-1',
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${qemuEscape(a.vm.modulesDir)},mount_tag=netwhymods,security_model=none,readonly=on`,
    '-virtfs', `local,path=${qemuEscape(a.runDir)},mount_tag=netwhyrun,security_model=none`,
    ...a.shares.flatMap((s) => [
      '-virtfs',
      `local,path=${qemuEscape(s.path)},mount_tag=${s.tag},security_model=none,multidevs=remap${s.mode === 'ro' ? ',readonly=on' : ''}`,
    ]),
  ];
  // Kill qemu with us even if we die without running exit handlers.
  const setpriv = await which('setpriv');
  const [cmd, args] = setpriv ? [setpriv, ['--pdeathsig', 'SIGKILL', '--', a.qemu, ...qargs]] : [a.qemu, qargs];
  await writeFile(join(a.runDir, `qemu-${a.accel}.cmdline`), [cmd, ...args].map(shq).join(' ') + '\n');

  const consoleLog = createWriteStream(join(a.runDir, `console-${a.accel}.log`));
  const start = Date.now();
  return await new Promise<BootOutcome>((res, rej) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    const outcome: Partial<BootOutcome> = {};
    let consoleText = '';
    let qemuStderr = '';
    const kill = (why: 'boot' | 'run'): void => {
      if (outcome.killed) return;
      outcome.killed = why;
      child.kill('SIGKILL');
    };
    const bootTimer = setTimeout(() => kill('boot'), a.bootTimeoutMs);
    const runTimer = setTimeout(() => kill('run'), a.timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      consoleLog.write(d);
      consoleText = (consoleText + d.toString('utf8')).slice(-16_384);
      if (outcome.readyMs === undefined && consoleText.includes(READY)) {
        outcome.readyMs = Date.now() - start;
        clearTimeout(bootTimer);
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      qemuStderr = (qemuStderr + d.toString('utf8')).slice(-8_192);
    });
    child.on('error', (e) => {
      clearTimeout(bootTimer);
      clearTimeout(runTimer);
      consoleLog.end();
      rej(new VmError(`cannot start ${a.qemu}: ${e.message}`, 'qemu-missing', a.runDir));
    });
    child.on('close', (code, signal) => {
      clearTimeout(bootTimer);
      clearTimeout(runTimer);
      consoleLog.end();
      void writeFile(join(a.runDir, `qemu-${a.accel}.stderr`), qemuStderr).catch(() => undefined);
      res({
        readyMs: outcome.readyMs,
        killed: outcome.killed,
        code,
        signal,
        consoleTail: tail(consoleText.replace(/\r/g, ''), 25),
        qemuStderr,
      });
    });
  });
}

async function pruneRuns(runsDir: string): Promise<void> {
  const names = (await readdir(runsDir).catch(() => [] as string[])).sort();
  for (const n of names.slice(0, Math.max(0, names.length - KEEP_RUNS))) {
    await rm(join(runsDir, n), { recursive: true, force: true }).catch(() => undefined);
  }
}

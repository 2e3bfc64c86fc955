// netwhy explain -- <command>: run the command, follow the flows its process
// tree causes through every namespace and NAT, and say what became of each.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { ABI_VERSION, type NwRecord } from '../abi.js';
import { ExitCode, UsageError } from '../errors.js';
import { allNetns, dropAddresses, explainCapture, netnsToSnapshot } from '../explain/capture.js';
import type { ExplainDoc } from '../explain/document.js';
import { documentText } from '../render/explanation.js';
import { FlowPipeline } from '../explain/pipeline.js';
import { NetnsNames } from '../kernel/netns.js';
import { type Symbolizer, kernelDropReasons, kernelSymbols, reasonName } from '../kernel/symbols.js';
import { requireTracing } from '../preflight.js';
import { HOST, type Snapshot, conntrackInsertFailed, listNetns, netfilterCounters, takeSnapshot } from '../state/snapshot.js';
import { type Capture, type NetfilterCounters, RECORDING_VERSION, RecordingError, decodeCapture, encodeCapture } from '../recording.js';
import { TraceSession } from '../tracer.js';
import { EVENT_HEADER, type ViewContext, eventLine, eventView } from '../render/events.js';
import type { K8sFacts } from '../model/k8s.js';
import { NameResolver } from '../model/names.js';
import { type NameOptions, gatherNames } from './names.js';
import type { Io } from './trace.js';

export interface ExplainOptions extends NameOptions {
  json?: boolean;
  /** Print every event as it happens, then the verdicts. */
  live?: boolean;
  record?: string;
  replay?: string;
  settle: number; // ms to keep tracing after the command exits (late replies, ICMP errors)
  ringMb: number;
  /** Also hand the command's standard output here, as it arrives (it is printed as usual). */
  onCommandStdout?: (chunk: Buffer) => void;
}

/** Run argv held at a gate (fd 3) until the tracer follows its pid. */
function runGated(argv: string[], json: boolean, onPid: (pid: number) => void, onStdout?: (chunk: Buffer) => void): Promise<number | null> {
  // `exec` keeps the pid, so what we follow is the command itself.
  const child = spawn('/bin/sh', ['-c', 'read _ <&3; exec 3<&-; exec "$@"', 'netwhy-gate', ...argv], {
    stdio: ['inherit', json || onStdout ? 'pipe' : 'inherit', 'inherit', 'pipe'],
  });
  if (onStdout) child.stdout?.on('data', onStdout);
  // With --json our stdout is the document: the command's output goes to stderr.
  child.stdout?.pipe(json ? process.stderr : process.stdout);
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('spawn', () => {
      onPid(child.pid!);
      const gate = child.stdio[3] as NodeJS.WritableStream;
      gate.end('\n');
    });
    child.on('exit', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(signal ? null : code);
    });
  });
}

/** insert_failed of every namespace before the command: the conntrack rule needs the growth. */
async function conntrackBaseline(): Promise<[string, number][]> {
  const names = [HOST, ...(await listNetns().catch(() => [] as string[]))];
  const values = await Promise.all(names.map((n) => conntrackInsertFailed(n)));
  return names.flatMap((n, i) => (values[i] === null ? [] : [[n, values[i]!] as [string, number]]));
}

/** Every namespace's rule counters before the command: a rule is confirmed by its own counter's growth. */
async function netfilterBaseline(): Promise<[string, NetfilterCounters][]> {
  const names = [HOST, ...(await listNetns().catch(() => [] as string[]))];
  return Promise.all(names.map((n) => netfilterCounters(n).then((c): [string, NetfilterCounters] => [n, c])));
}

async function captureSnapshots(inodes: Set<number>, names: NetnsNames): Promise<Snapshot[]> {
  const snaps = await Promise.all(
    [...inodes].map(async (ino) => {
      const name = names.name(ino);
      if (/^\d+$/.test(name)) return undefined; // a namespace without a name: nothing to enter
      try {
        return await takeSnapshot(name);
      } catch {
        return undefined; // the namespace went away: its rules answer unknown, with evidence
      }
    }),
  );
  return snaps.filter((s): s is Snapshot => !!s);
}

/** Exit status: the traced command's own (1 if a signal ended it), 0 for a replay. */
export async function runExplain(command: string[], opts: ExplainOptions, io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  const doc = await runExplainCaptured(command, opts, io);
  if (opts.replay) return 0;
  return doc.exitCode ?? ExitCode.FAILURE;
}

/** Run (or replay), print, and return the document. */
export async function runExplainCaptured(command: string[], opts: ExplainOptions, io: Io = { out: process.stdout, err: process.stderr }): Promise<ExplainDoc> {
  if (opts.replay) {
    if (command.length) throw new UsageError('--replay explains a recording: give no command');
    let buf: Uint8Array;
    try {
      buf = readFileSync(opts.replay);
    } catch (e) {
      throw new UsageError(`cannot read ${opts.replay}: ${(e as Error).message}`);
    }
    let capture: Capture;
    try {
      capture = decodeCapture(buf);
    } catch (e) {
      if (e instanceof RecordingError) throw new UsageError(`${opts.replay}: ${e.message}`);
      throw e;
    }
    const doc = explainCapture(capture);
    print(doc, opts, io);
    return doc;
  }
  if (command.length === 0) throw new UsageError('give the command to explain after --', 'netwhy explain -- curl -m 2 http://192.168.0.11:30080');
  if (!(opts.settle >= 0)) throw new UsageError('--settle must be a number of milliseconds');
  requireTracing();
  const names = new NetnsNames();
  const opening = TraceSession.open({ ringBytes: opts.ringMb * 1024 * 1024 });
  const syms = kernelSymbols(); // read on this thread while the BPF object loads on another
  const session = await opening;
  const raw: Uint8Array[] = [];
  const seen: NwRecord[] = [];
  let exitCode: number | null;
  let lost = 0;
  let conntrackBefore: [string, number][] = [];
  let netfilterBefore: [string, NetfilterCounters][] = [];
  try {
    session.followMode();
    session.attach();
    [conntrackBefore, netfilterBefore] = await Promise.all([conntrackBaseline(), netfilterBaseline()]);
    // The live view names pods from the start (the sources answer within their deadlines);
    // the document asks again once the namespaces' rules are snapshotted.
    const live = opts.live ? liveView(names, syms, opts.json ? io.err : io.out, await gatherNames(opts)) : undefined;
    session.start(
      (records) => {
        seen.push(...records);
        live?.(records);
      },
      (batch) => raw.push(batch),
    );
    exitCode = await runGated(command, !!opts.json, (pid) => session.followPid(pid), opts.onCommandStdout);
    await new Promise((r) => setTimeout(r, opts.settle));
    await session.stop();
    lost = session.counters().lost;
  } finally {
    session.close();
  }
  const inodes = netnsToSnapshot(seen);
  const snapshots = await captureSnapshots(inodes, names);
  const k8s = await gatherNames(opts, snapshots);
  const capture: Capture = {
    version: RECORDING_VERSION,
    abiVersion: ABI_VERSION,
    kernel: release(),
    command,
    exitCode,
    lost,
    dropReasons: [...kernelDropReasons()],
    symbols: [...new Set(dropAddresses(seen))].map((a) => [a.toString(16), syms.name(a), syms.func(a) ?? '']),
    netns: [...allNetns(seen)].map((i) => [i, names.name(i)]),
    snapshots,
    conntrackBefore,
    netfilterBefore,
    k8s,
    records: Buffer.concat(raw),
  };
  if (opts.record) writeFileSync(opts.record, encodeCapture(capture));
  const doc = explainCapture(capture);
  if (opts.live) io.out.write('\n');
  print(doc, opts, io);
  return doc;
}

/** Every event as a trace line, as it arrives (the main job's live view). */
function liveView(names: NetnsNames, syms: Symbolizer, out: NodeJS.WritableStream, k8s: K8sFacts | undefined): (records: NwRecord[]) => void {
  const reasons = kernelDropReasons();
  const pipeline = new FlowPipeline();
  const ctx: ViewContext = { t0: -1, netnsName: (i) => names.name(i), reasonName: (v) => reasonName(reasons, v), symbol: (a) => syms.name(a), names: k8s && new NameResolver(k8s) };
  out.write(EVENT_HEADER + '\n');
  return (records) => {
    let text = '';
    for (const r of records) {
      if (ctx.t0 < 0) ctx.t0 = r.ts;
      const journey = pipeline.add(r);
      if (r.kind !== 'lost' && r.kind !== 'sock') text += eventLine(eventView(r, journey, ctx)) + '\n';
    }
    out.write(text);
  };
}

function print(doc: ExplainDoc, opts: ExplainOptions, io: Io): void {
  io.out.write((opts.json ? JSON.stringify(doc, null, 2) : documentText(doc)) + '\n');
}

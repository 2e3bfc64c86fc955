// A typed facade over the native Tracer: what a trace session does, in the
// order it must happen. The binding is a parameter so unit tests can pass a fake.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { FilterMode, LAYOUT, type NwRecord, PROBES, decodeBatch } from './abi.js';
import { filterValue } from './filter/compile.js';
import { NetwhyError, EnvironmentError, UsageError, isNativeError } from './errors.js';
import { BPF_OBJECT_PATH, type NativeBinding, type NativeTracer, loadBinding } from './native.js';

export interface ProbeReport {
  probe: string;
  /** The attach mode this kernel gives the probe, null when none works. */
  mode: string | null;
  program: string | null;
  /** Why each better mode was passed over, and why the probe is off if it is. */
  skipped: { mode: string; reason: string }[];
  attached: boolean;
}

export interface ProbeCounters {
  probe: string;
  events: number;
  lost: number;
  filtered: number;
}

export interface SessionCounters {
  probes: ProbeCounters[];
  lost: number;
  /** Records the decoder could not read (version or layout mismatch). */
  undecodable: number;
  records: number;
}

export interface SessionOptions {
  ringBytes?: number;
  binding?: NativeBinding;
  objectPath?: string;
  disable?: string[];
  /** Attach modes to pass over; default from NETWHY_AVOID_MODES (comma-separated). */
  avoidModes?: string[];
  /** Take the kernel stack of every drop; by default only where it is evidence (a netfilter drop, one without a specific reason). */
  stackAlways?: boolean;
}

/**
 * How often the reader drains the ring buffer on its own. The BPF side wakes
 * it only once an eighth of the ring waits (nw_wakeup_bytes): under load one
 * wake-up per many records instead of one each; a lone event waits at most
 * this long.
 */
const POLL_MS = 10;

/** Records decoded and handed over at a time (see deliver()). */
const SLICE_RECORDS = 256;

const ATTACH_MODES = ['fentry', 'fexit', 'kprobe', 'kretprobe', 'tp_btf', 'raw_tp', 'tracepoint'] as const;

/**
 * NETWHY_AVOID_MODES=fentry,fexit: pass those mechanisms over, e.g. on a
 * kernel where one misbehaves (each probe falls back to its next variant).
 */
function avoidModesFromEnv(value = process.env.NETWHY_AVOID_MODES): string[] {
  const modes = (value ?? '').split(',').map((m) => m.trim()).filter(Boolean);
  const bad = modes.filter((m) => !(ATTACH_MODES as readonly string[]).includes(m));
  if (bad.length) throw new UsageError(`NETWHY_AVOID_MODES: unknown attach mode '${bad[0]}'`, `choose from ${ATTACH_MODES.join(', ')}`);
  return modes;
}

const PROBE_STATS: [number, string][] = PROBES.map((p) => [p.id, p.name]);

function u32Key(v: number): Uint8Array {
  const k = new Uint8Array(4);
  new DataView(k.buffer).setUint32(0, v, true);
  return k;
}

export class TraceSession {
  private readonly native: NativeTracer;
  private attachedPrograms = new Set<string>();
  private undecodable = 0;
  private ended?: Promise<void>;
  private endResolve?: () => void;

  private constructor(
    native: NativeTracer,
    private readonly binding: NativeBinding,
  ) {
    this.native = native;
  }

  /**
   * Open the BPF object and load it. The load (the verifier) runs off the
   * event loop: whatever the caller started before (kernelSymbols()) goes on
   * meanwhile.
   */
  static async open(opts: SessionOptions = {}): Promise<TraceSession> {
    const binding = opts.binding ?? loadBinding();
    const ringBytes = opts.ringBytes ?? 8 << 20;
    try {
      const native = new binding.Tracer({
        object: opts.objectPath ?? BPF_OBJECT_PATH,
        ringBytes,
        rodata: { nw_wakeup_bytes: ringBytes / 8, nw_stack_always: opts.stackAlways ?? false },
        pollMs: POLL_MS,
        disable: opts.disable ?? [],
        avoidModes: opts.avoidModes ?? avoidModesFromEnv(),
      });
      await new Promise<void>((resolve, reject) => native.load((err) => (err ? reject(err) : resolve())));
      return new TraceSession(native, binding);
    } catch (e) {
      if (isNativeError(e)) {
        const hint = e.code === 'EPERM' ? 'run netwhy as root (or with CAP_BPF and CAP_PERFMON)' : e.libbpfLog?.trim().split('\n').slice(-8).join('\n');
        throw new EnvironmentError(e.message, hint);
      }
      throw e;
    }
  }

  /**
   * Once start-up's big temporary buffers (kernel symbols, BTF) are garbage:
   * collect them and return their pages. V8 would not collect for a long
   * while: they are ArrayBuffers, outside the heap whose filling triggers it.
   */
  releaseFreedMemory(): void {
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
    // Backing stores are freed right after the collection, off this call.
    setTimeout(() => this.binding.releaseMemory?.(), 20).unref();
  }

  probes(): ProbeReport[] {
    return this.native.probes().map((p) => {
      const chosen = p.chosen >= 0 ? p.variants[p.chosen] : undefined;
      const skipped = p.variants
        .filter((v, i) => (p.chosen < 0 || i < p.chosen) && v.reason)
        .map((v) => ({ mode: v.mode, reason: v.reason }));
      return {
        probe: p.probe,
        mode: chosen?.mode ?? null,
        program: chosen?.program ?? null,
        skipped,
        attached: chosen ? this.attachedPrograms.has(chosen.program) : false,
      };
    });
  }

  /** Pass everything, the compiled filter value, or only followed flows. */
  setFilter(value: Uint8Array): void {
    this.native.updateMap('filter', u32Key(0), value);
  }

  followMode(): void {
    this.setFilter(filterValue(FilterMode.FOLLOW));
  }

  /** Packets that this process (and its future children) send seed followed flows. */
  followPid(pid: number): void {
    this.native.updateMap('followed_pids', u32Key(pid), Uint8Array.of(1));
  }

  /** Attach every chosen program; fails only if nothing at all could attach. */
  attach(): ProbeReport[] {
    const failed = new Set(this.native.attach().map((f) => f.program));
    for (const p of this.native.probes()) {
      if (p.chosen >= 0 && !failed.has(p.variants[p.chosen].program)) this.attachedPrograms.add(p.variants[p.chosen].program);
    }
    const reports = this.probes();
    if (!reports.some((r) => r.attached)) {
      throw new EnvironmentError('no probe could attach on this kernel', 'run `netwhy doctor` to see why each probe is unavailable');
    }
    return reports;
  }

  /**
   * Deliver decoded records until stop(), a slice of at most SLICE_RECORDS
   * at a time, and each raw batch to onBatch first. onRecords may return a
   * promise (e.g. until stdout drains): the next slice waits for it, so a
   * slow consumer costs counted loss, not memory.
   */
  start(onRecords: (records: NwRecord[]) => void | Promise<void>, onBatch?: (batch: Uint8Array) => void): void {
    this.ended = new Promise((resolve) => (this.endResolve = resolve));
    this.native.start((batch) => {
      if (batch === null) {
        this.endResolve?.();
        return;
      }
      // One batch in flight: the next comes only after the event loop has
      // turned (and the consumer is ready), so signals, timers and output
      // keep up under a storm.
      const ack = () => setImmediate(() => this.native.ack());
      let done: void | Promise<void> = undefined;
      try {
        onBatch?.(batch);
        done = this.deliver(batch, 0, onRecords);
      } finally {
        if (done instanceof Promise) done.then(ack, ack);
        else ack();
      }
    });
  }

  /**
   * A batch in slices: each slice's records are garbage before the next is
   * decoded, so they die young. Decoded whole (~2,500 records of 256 KiB),
   * a batch outlived V8's scavenges and was promoted to the old generation.
   */
  private deliver(batch: Uint8Array, from: number, onRecords: (records: NwRecord[]) => void | Promise<void>): void | Promise<void> {
    while (from < batch.length) {
      const { records, bad, next } = decodeBatch(batch, [], from, SLICE_RECORDS);
      this.undecodable += bad;
      from = next;
      if (!records.length) continue;
      const done = onRecords(records);
      if (done instanceof Promise) return done.then(() => this.deliver(batch, from, onRecords));
    }
  }

  /** Drain what the kernel has already written, then resolve. */
  async stop(): Promise<void> {
    if (!this.ended) return;
    this.native.stop();
    await this.ended;
  }

  counters(): SessionCounters {
    const probes: ProbeCounters[] = [];
    let lost = 0;
    const S = LAYOUT.nw_stats;
    for (const [id, probe] of PROBE_STATS) {
      const c = { probe, events: 0, lost: 0, filtered: 0 };
      for (const v of this.native.readPercpu('stats', u32Key(id))) {
        const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
        c.events += Number(dv.getBigUint64(S.events, true));
        c.lost += Number(dv.getBigUint64(S.lost, true));
        c.filtered += Number(dv.getBigUint64(S.filtered, true));
      }
      lost += c.lost;
      probes.push(c);
    }
    return { probes, lost, undecodable: this.undecodable, records: this.native.stats().records };
  }

  /** Detach everything and free the kernel objects. Safe to call twice. */
  close(): void {
    try {
      this.native.close();
    } catch (e) {
      throw new NetwhyError(`closing the tracer failed: ${(e as Error).message}`);
    }
  }
}

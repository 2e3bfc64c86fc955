// Finds the built addon and BPF object, and declares the binding's types.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EnvironmentError } from './errors.js';

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ADDON_PATH = process.env.NETWHY_ADDON ?? join(PACKAGE_ROOT, 'native/build/Release/netwhy.node');
export const BPF_OBJECT_PATH = process.env.NETWHY_BPF_OBJECT ?? join(PACKAGE_ROOT, 'bpf/build/netwhy.bpf.o');

export interface NativeVariant {
  program: string;
  mode: string;
  target: string;
  usable: boolean;
  reason: string;
}

export interface NativeProbe {
  probe: string;
  chosen: number;
  variants: NativeVariant[];
}

export interface NativeTracerOptions {
  object: string;
  ringBytes: number;
  flushBytes?: number;
  /** Probes not to load at all. */
  disable?: string[];
  /** Attach modes to pass over ("fentry", "kprobe", ...). */
  avoidModes?: string[];
  /** `const volatile` settings of the BPF object (bpf/common.bpf.h), by name, set before load. */
  rodata?: Record<string, number | boolean>;
  /** The reader's poll period: it drains records that came without a wake-up. */
  pollMs?: number;
}

export interface NativeTracer {
  /** Load the programs on a thread of libuv's pool; done(null), or done(error) with the tracer closed. */
  load(done: (err: Error | null) => void): void;
  probes(): NativeProbe[];
  updateMap(name: string, key: Uint8Array, value: Uint8Array): void;
  deleteMapKey(name: string, key: Uint8Array): boolean;
  readPercpu(name: string, key: Uint8Array): Uint8Array[];
  attach(): { program: string; error: string }[];
  start(onBatch: (batch: Uint8Array | null) => void): void;
  stop(): void;
  /** Return the credit for one batch: call once a batch is handled. */
  ack(): void;
  close(): void;
  ref(): void;
  unref(): void;
  stats(): { records: number; batches: number; bytes: number; links: number };
}

export interface KernelFeature {
  name: string;
  available: boolean;
  reason: string;
}

export interface NativeBinding {
  Tracer: new (opts: NativeTracerOptions) => NativeTracer;
  kernelFeatures(): KernelFeature[];
  /** Give the freed heap pages back to the kernel (glibc keeps them otherwise: start-up's BTF and kallsyms buffers). */
  releaseMemory(): void;
  abiVersion: number;
}

let cached: NativeBinding | undefined;

export function loadBinding(): NativeBinding {
  if (cached) return cached;
  for (const [path, what] of [[ADDON_PATH, 'native addon'], [BPF_OBJECT_PATH, 'BPF object']]) {
    if (!existsSync(path)) throw new EnvironmentError(`${what} not found at ${path}`, 'build it with: npm run build');
  }
  cached = createRequire(import.meta.url)(ADDON_PATH) as NativeBinding;
  return cached;
}

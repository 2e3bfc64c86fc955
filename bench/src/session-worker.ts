// A TraceSession on a worker thread. Under a storm the thread that receives
// batches is busy for as long as batches keep coming (Node dispatches up to
// 1000 thread-safe-function calls before it returns to the event loop), so
// the bench measures from another thread: this one publishes what it
// decoded in shared memory, which the main thread reads on time.
import { Session } from 'node:inspector/promises';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { compileFilter } from '../../dist/filter/compile.js';
import { TraceSession, type SessionCounters } from '../../dist/tracer.js';

export interface WorkerInput {
  disable: string[];
  filter: string;
  ringBytes: number;
  /** Keep copies of the first batches, up to this many bytes (for the decoder bench). */
  keepBytes: number;
  /** Float64Array: [0] records decoded, [1] batches. */
  shared: SharedArrayBuffer;
  /** Sample this thread with V8's profiler from attach to stop. */
  profile?: boolean;
}

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'error'; message: string }
  | { type: 'done'; counters: SessionCounters; kept: Uint8Array[]; profile?: object };

if (!isMainThread && parentPort) {
  const port = parentPort;
  const input = workerData as WorkerInput;
  const counts = new Float64Array(input.shared);
  const kept: Uint8Array[] = [];
  let keptBytes = 0;
  let session: TraceSession | undefined;
  let inspector: Session | undefined;
  try {
    session = await TraceSession.open({ ringBytes: input.ringBytes, disable: input.disable });
    session.setFilter(compileFilter(input.filter, () => undefined).value);
    session.attach();
    session.start(
      (records) => {
        counts[0] += records.length;
      },
      (batch) => {
        counts[1]++;
        if (keptBytes < input.keepBytes) {
          kept.push(new Uint8Array(batch));
          keptBytes += batch.length;
        }
      },
    );
    if (input.profile) {
      // Only now: the profiler's SIGPROF interrupts the BPF verifier, which
      // then fails the load with EAGAIN.
      inspector = new Session();
      inspector.connect();
      await inspector.post('Profiler.enable');
      await inspector.post('Profiler.setSamplingInterval', { interval: 250 });
      await inspector.post('Profiler.start');
    }
    port.postMessage({ type: 'ready' } satisfies WorkerReply);
  } catch (e) {
    session?.close();
    port.postMessage({ type: 'error', message: (e as Error).message } satisfies WorkerReply);
    port.close();
  }
  port.on('message', async (m: string) => {
    if (m !== 'stop' || !session) return;
    await session.stop();
    const profile = inspector ? (await inspector.post('Profiler.stop')).profile : undefined;
    inspector?.disconnect();
    const counters = session.counters();
    session.close();
    port.postMessage({ type: 'done', counters, kept, profile } satisfies WorkerReply);
    port.close();
  });
}

// The worker thread of run.ts: spawns the commands the main thread asks for.
import { parentPort } from 'node:worker_threads';
import { runHere } from './run.js';

parentPort?.on('message', async ({ id, argv, timeoutMs }: { id: number; argv: string[]; timeoutMs: number }) => {
  parentPort?.postMessage({ id, result: await runHere(argv, timeoutMs) });
});

// A drop storm: UDP datagrams from namespace a to a closed port in namespace b,
// each one dropped in b (NO_SOCKET). Node is the sender because it is the one
// runtime every netwhy machine has; several processes to use every core.
import type { ChildProcess } from 'node:child_process';
import { exited, onLines, spawnTracked, stopChild } from './util.js';

export const STORM_PORT = 9;

// argv: dst port seconds pps (0: as fast as possible). Prints what it sent.
const SENDER = `
const [dst, port, secs, pps] = process.argv.slice(1).map((v, i) => (i ? Number(v) : v));
const s = require('dgram').createSocket('udp4');
const buf = Buffer.alloc(16);
let sent = 0;
const t0 = Date.now();
const end = t0 + secs * 1000;
const finish = () => { process.stdout.write(sent + '\\n'); process.exit(0); };
process.on('SIGTERM', finish);
s.on('error', () => {});
s.connect(port, dst, () => {
  (function burst() {
    const now = Date.now();
    if (now >= end) return finish();
    const want = pps > 0 ? Math.min(Math.floor(((now - t0) / 1000) * pps) - sent, 2000) : 256;
    for (let i = 0; i < want; i++) s.send(buf);
    sent += Math.max(want, 0);
    if (pps > 0) setTimeout(burst, 2); else setImmediate(burst);
  })();
});
`;

export class Storm {
  private readonly procs: ChildProcess[] = [];
  private readonly sentBy: number[] = [];
  readonly started = Date.now();

  /**
   * procs senders in namespace `from.a`, to `from.addrB`, each at pps
   * datagrams/s (0 = as fast as it can), for at most secs.
   */
  constructor(from: { a: string; addrB: string }, opts: { procs: number; pps?: number; secs: number; port?: number }) {
    for (let i = 0; i < opts.procs; i++) {
      const args = ['-e', SENDER, from.addrB, String(opts.port ?? STORM_PORT), String(opts.secs), String(opts.pps ?? 0)];
      const child = spawnTracked('ip', ['netns', 'exec', from.a, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
      onLines(child.stdout, (l) => (this.sentBy[i] = Number(l)));
      this.procs.push(child);
    }
  }

  /** Stop every sender; resolves the datagrams sent and the storm's length. */
  async stop(): Promise<{ sent: number; secs: number }> {
    await Promise.all(this.procs.map((p) => stopChild(p, 'SIGTERM', 2000)));
    return { sent: this.sentBy.reduce((a, b) => a + (b || 0), 0), secs: (Date.now() - this.started) / 1000 };
  }

  /** Wait for the senders to finish on their own. */
  async done(): Promise<{ sent: number; secs: number }> {
    await Promise.all(this.procs.map((p) => exited(p)));
    return this.stop();
  }
}

// The same BPF object on the Debian 6.1 kernel (in the microVM), with ip_vs
// loaded: which attach mode each probe gets there. The host kernel's side is
// in test/integration/cli.test.ts.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runInVm, vmUnavailableReason } from '../../src/vm/runner.js';

const unavailable = await vmUnavailableReason();
if (unavailable) console.warn(`skipping VM tests: ${unavailable}`);

interface Probe {
  probe: string;
  mode: string | null;
  skipped: { mode: string; reason: string }[];
}

describe.skipIf(unavailable !== null)('attach modes on the 6.1 kernel', () => {
  it('fentry/fexit where they work, kretprobe where fexit cannot attach, tp_btf for tracepoints', { timeout: 300_000 }, async () => {
    const cli = resolve(__dirname, '../../dist/cli.js');
    const r = await runInVm({ command: [process.execPath, cli, 'doctor', '--json'], modules: ['ip_vs', 'ip_vs_rr'], timeoutMs: 240_000 });
    const report = JSON.parse(r.stdout) as { kernel: { release: string }; probes: Probe[]; features: { name: string; available: boolean }[] };
    expect(report.kernel.release).toMatch(/^6\.1\./);
    const mode = (p: string) => report.probes.find((x) => x.probe === p)?.mode;
    for (const f of ['fentry', 'kprobe', 'tp_btf']) expect(report.features.find((x) => x.name === f)?.available, f).toBe(true);
    for (const p of ['kfree_skb', 'netif_receive_skb', 'net_dev_queue', 'fib_table_lookup', 'sched_process_fork']) expect(mode(p), p).toBe('tp_btf');
    // ip_vs_conn_new has 7 arguments: the trampoline refuses it, kretprobe takes over
    expect(mode('ip_vs_conn_new')).toBe('kretprobe');
    expect(report.probes.find((x) => x.probe === 'ip_vs_conn_new')!.skipped[0]).toMatchObject({ mode: 'fexit', reason: expect.stringContaining('ENOTSUPP') });
    for (const p of ['ip_vs_scheduler_err', 'ip_vs_unlink_service', 'ip_vs_add_dest', 'ip_vs_del_dest', 'ip_vs_edit_dest']) expect(mode(p), p).toBe('fentry');
    for (const p of ['ip_vs_in_hook', 'ip_vs_nat_xmit', 'ip_vs_add_service', 'ip_vs_edit_service']) expect(mode(p), p).toBe('fexit');
  });
});

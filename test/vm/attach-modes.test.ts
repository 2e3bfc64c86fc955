// The same BPF object on the Debian 6.1 kernel (in the microVM), with ip_vs
// loaded: which attach mode each probe gets there, and the kprobe/kretprobe
// fallbacks at work when fentry/fexit are passed over (NETWHY_AVOID_MODES).
// One boot. The host kernel's side is in test/integration/cli.test.ts.
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ExplainDoc } from '../../src/explain/document.js';
import { runInVm, type VmRunResult } from '../../src/vm/runner.js';
import { expectValid } from '../helpers/schema.js';
import { prepareVmBeforeAll, vmSkipReason } from './helpers.js';

const unavailable = await vmSkipReason('the attach-mode tests on the 6.1 kernel');

interface Probe {
  probe: string;
  mode: string | null;
  skipped: { mode: string; reason: string }[];
}
interface DoctorReport {
  kernel: { release: string };
  probes: Probe[];
  features: { name: string; available: boolean }[];
}

const CLI = resolve(__dirname, '../../dist/cli.js');
const NODE = process.execPath;
// In the guest: both doctor reports, then a virtual service with no real
// server (a Service without ready endpoints) on a "node" namespace, and a
// client's curl to it explained with fentry/fexit avoided: the scheduler error
// comes from a kprobe, the hook's NF_DROP from a kretprobe and its companion.
const SCRIPT = `
set -u
echo '=== DOCTOR'; ${NODE} ${CLI} doctor --json
echo '=== DOCTOR_KPROBE'; NETWHY_AVOID_MODES=fentry,fexit ${NODE} ${CLI} doctor --json
ip netns add nwk-c; ip netns add nwk-n
ip link add nwk-c0 netns nwk-c type veth peer name nwk-n0 netns nwk-n
ip -n nwk-c addr add 10.199.9.1/24 dev nwk-c0; ip -n nwk-n addr add 10.199.9.2/24 dev nwk-n0
ip -n nwk-c link set nwk-c0 up; ip -n nwk-n link set nwk-n0 up; ip -n nwk-c link set lo up; ip -n nwk-n link set lo up
ip -n nwk-c route add 10.96.0.0/16 via 10.199.9.2
ip -n nwk-n link add kube-ipvs0 type dummy; ip -n nwk-n addr add 10.96.0.30/32 dev kube-ipvs0
ip netns exec nwk-n ipvsadm -A -t 10.96.0.30:80 -s rr
echo '=== EXPLAIN_KPROBE'
NETWHY_AVOID_MODES=fentry,fexit ${NODE} ${CLI} explain --json --live -- ip netns exec nwk-c curl -sS -m 2 http://10.96.0.30/ 2>/tmp/nw-live
echo '=== LIVE'; cat /tmp/nw-live
echo '=== END'
ip netns del nwk-c; ip netns del nwk-n
`;

function section(out: string, name: string): string {
  const m = new RegExp(`^=== ${name}\\n([\\s\\S]*?)(?=^=== )`, 'm').exec(out);
  return m ? m[1] : '';
}

describe.skipIf(unavailable !== null)('attach modes on the 6.1 kernel', () => {
  let r: VmRunResult;
  prepareVmBeforeAll();
  beforeAll(async () => {
    r = await runInVm({ command: ['bash', '-c', SCRIPT], modules: ['ip_vs', 'ip_vs_rr', 'dummy'], timeoutMs: 300_000 });
    console.log(`[vm] attach modes: accel=${r.accel} boot=${r.bootMs}ms total=${r.totalMs}ms exit=${r.exitCode}`);
  }, 330_000);

  it('fentry/fexit where they work, kretprobe where fexit cannot attach, tp_btf for tracepoints', () => {
    const report = expectValid('doctor', JSON.parse(section(r.stdout, 'DOCTOR'))) as DoctorReport;
    expect(report.kernel.release).toMatch(/^6\.1\./);
    const mode = (p: string) => report.probes.find((x) => x.probe === p)?.mode;
    for (const f of ['fentry', 'kprobe', 'tp_btf']) expect(report.features.find((x) => x.name === f)?.available, f).toBe(true);
    for (const p of ['kfree_skb', 'netif_receive_skb', 'net_dev_queue', 'fib_table_lookup', 'sched_process_fork', 'inet_sock_set_state']) expect(mode(p), p).toBe('tp_btf');
    // sock:sock_send_length came in 6.3: unavailable here, and no problem of netwhy's
    expect(mode('sock_send_length')).toBeNull();
    expect(report.problems.join('\n')).not.toContain('sock_send_length');
    // ip_vs_conn_new has 7 arguments: the trampoline refuses it, kretprobe takes over
    expect(mode('ip_vs_conn_new')).toBe('kretprobe');
    expect(report.probes.find((x) => x.probe === 'ip_vs_conn_new')!.skipped[0]).toMatchObject({ mode: 'fexit', reason: expect.stringContaining('ENOTSUPP') });
    for (const p of ['ip_vs_scheduler_err', 'ip_vs_unlink_service', 'ip_vs_add_dest', 'ip_vs_del_dest', 'ip_vs_edit_dest']) expect(mode(p), p).toBe('fentry');
    for (const p of ['ip_vs_in_hook', 'ip_vs_nat_xmit', 'ip_vs_add_service', 'ip_vs_edit_service']) expect(mode(p), p).toBe('fexit');
  });

  it('with fentry/fexit avoided every IPVS probe falls back to kprobe or kretprobe', () => {
    const report = expectValid('doctor', JSON.parse(section(r.stdout, 'DOCTOR_KPROBE'))) as DoctorReport;
    const probe = (p: string) => report.probes.find((x) => x.probe === p)!;
    for (const p of ['ip_vs_conn_new', 'ip_vs_in_hook', 'ip_vs_nat_xmit']) expect(probe(p).mode, p).toBe('kretprobe');
    for (const p of ['ip_vs_scheduler_err', 'ip_vs_add_service', 'ip_vs_edit_service', 'ip_vs_unlink_service', 'ip_vs_add_dest', 'ip_vs_edit_dest', 'ip_vs_del_dest']) {
      expect(probe(p).mode, p).toBe('kprobe');
      expect(probe(p).skipped[0]?.reason, p).toMatch(/avoided on request/);
    }
    expect(probe('kfree_skb').mode).toBe('tp_btf');
  });

  it('kprobe mode explains a service with no real server: scheduler error by kprobe, hook drop by kretprobe', () => {
    const doc = expectValid('explain', JSON.parse(section(r.stdout, 'EXPLAIN_KPROBE'))) as ExplainDoc;
    const live = section(r.stdout, 'LIVE');
    const ctx = `${JSON.stringify(doc.flows.map((f) => f.verdict), null, 1)}\n${live.slice(-3000)}`;
    expect(doc.exitCode, ctx).toBe(7); // curl: ICMP port unreachable, "Couldn't connect"
    const failed = doc.flows.find((f) => f.verdict.outcome === 'dropped');
    expect(failed?.verdict.cause, ctx).toMatchObject({ type: 'ipvs-service', ref: 'TCP 10.96.0.30:80 rr', value: 'no destination available', netns: 'nwk-n' });
    expect(live, ctx).toContain('IPVS TCP 10.96.0.30:80 rr: no destination available');
    expect(live, ctx).toContain('IPVS the IPVS hook dropped the packet (NF_DROP)');
  });
});

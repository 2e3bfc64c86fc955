#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=50
// The netwhy command line: parse, dispatch, and one error boundary.
// The first line gives V8 a smaller heap for a long trace, each for ~5 % more
// CPU per event (npm run bench, memory and agent sections): the young
// generation capped at 2 x 4 MiB (it grows to 2 x 16 under a trace's event
// rate: ~20 MiB), and the old generation let grow by half its live size
// between collections, not up to 4x as V8 does for small heaps (the agent
// under a storm: ~25 MiB). The bench and the image run netwhy with the flags
// of this line.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { NetwhyError, ExitCode } from './errors.js';
import { DEFAULT_LISTEN } from './commands/defaults.js';
import { addNameOptions } from './commands/names.js';

function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

/** The version of the installed package: dist/cli.js sits one level below package.json. */
export const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

/** One prefix for every error netwhy prints: commander's own say "error:". */
const ERROR_PREFIX = 'netwhy: ';

export function buildProgram(): Command {
  const program = new Command('netwhy')
    .description('Trace packets in the kernel and say why they were dropped or rewritten.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, ERROR_PREFIX)) })
    .exitOverride();

  addNameOptions(program
    .command('trace'))
    .description('show, live, every drop (and with a filter every hop) of matching packets')
    .argument('[filter...]', 'tcpdump-like filter: host, net, port, portrange, src/dst, tcp, udp, icmp, ip, ip6, proto, netns, pod NS/NAME, svc NS/NAME; and/or/not, ( )')
    .option('--json', 'one JSON object per event, and a summary object at the end')
    .option('-c, --count <n>', 'stop after n events', positiveNumber)
    .option('-d, --duration <seconds>', 'stop after this many seconds', positiveNumber)
    .option('--events <kinds>', 'which events: drop,rx,tx,route (default: all with a filter, drop without)')
    .option('--verdicts', 'a verdict (outcome, cause, evidence, fix) for each flow once it goes idle (default with a filter)')
    .option('--no-verdicts', 'events only')
    .option('--stacks', 'take the kernel stack of every drop (by default only where it is evidence: netfilter drops and drops without a specific reason)')
    .option('--ring-mb <mb>', 'ring buffer size in MiB (a power of two)', positiveNumber, 8)
    .addHelpText(
      'after',
      `
Examples:
  netwhy trace                                   every drop on this machine, with its reason
  netwhy trace host 10.0.0.1 and port 30080      every hop of one client's NodePort traffic
  netwhy trace udp port 53 and netns node1       DNS in one network namespace
  netwhy trace net 10.244.0.0/16 --json -c 100   pod network, 100 events as JSON lines
  netwhy trace pod default/web-7c9f5b6d4-x8mzt   one pod's traffic (its addresses, or its netns)
  netwhy trace svc kube-system/kube-dns          a Service's traffic (its IPs and ports, NodePorts)

Pods and Services are named from the container runtime (containerd, crictl),
the CNI result cache, kube-proxy's rules and, when reachable, the API server
(netwhy doctor lists what it found); --no-names skips them.
A packet matches if its own addresses or its conntrack original tuple match,
so NAT-ed packets and their replies stay in a filtered trace.`,
    )
    .action(async (filter: string[], opts) => {
      process.exitCode = await (await import('./commands/trace.js')).runTrace(filter, opts);
    });

  addNameOptions(program
    .command('explain'))
    .description('run a command, follow the packets it causes through every namespace and NAT, and say why each flow failed')
    .argument('[command...]', 'the command to run, after --')
    .option('--record <file>', 'also save what was captured (records, names, state) for --replay')
    .option('--replay <file>', 'explain a saved recording instead of running a command (no privileges needed)')
    .option('--json', 'print one JSON document (described in docs/json.md); the command\'s own output goes to stderr')
    .option('--live', 'also print every event as it happens (like netwhy trace)')
    .option('--settle <ms>', 'keep tracing this long after the command exits, for late replies', (v) => Number(v), 500)
    .option('--ring-mb <mb>', 'ring buffer size in MiB (a power of two)', positiveNumber, 8)
    .addHelpText(
      'after',
      `
Examples:
  netwhy explain -- curl -m 2 http://192.168.0.11:30080
  netwhy explain --json -- dig @10.96.0.10 kubernetes.default.svc.cluster.local
  netwhy explain -- ip netns exec client curl -m 2 http://10.96.0.20

Only the flows of the command and its children are traced (in the kernel), in
every network namespace they cross and through NAT, replies included. The
cause is only named when the evidence proves it; otherwise it is 'unknown',
with the evidence. The JSON document is described in docs/json.md.
Pods, Services and NetworkPolicies are named beside addresses and namespaces
when a name source knows them (netwhy doctor lists the sources).

Exit status, like time(1) and strace(1): the command's own status (1 if a
signal ended it; 0 for --replay); 2 for a usage error, 3 when this machine
cannot trace (not root, no BTF, a probe missing).`,
    )
    .action(async (command: string[], opts) => {
      process.exitCode = await (await import('./commands/explain.js')).runExplain(command, opts);
    });

  const lab = program
    .command('lab')
    .description('a small Kubernetes-like lab of network namespaces that reproduces field failures, each explained by netwhy')
    .addHelpText(
      'after',
      `
Examples:
  netwhy lab list                    the scenarios and their faults
  netwhy lab run nodeport-ok         bring the lab up, trace a NodePort curl live, show the verdict, tear down
  netwhy lab run ip-forward-off      the same with node1's ip_forward off: the cause, the evidence, the fix
  netwhy lab run --vm ipvs-secondary-vip   an IPVS-mode scenario, in the microVM when this kernel has no IPVS
  netwhy lab run nft-no-endpoints    kube-proxy's nftables mode: the rule, the map element and its Service named
  netwhy lab up / netwhy lab down    keep the lab up to explore by hand (down also cleans up after a crash); up --nft for nftables mode`,
    );
  const labCommands = () => import('./commands/lab.js');
  lab.command('list').description('list the scenarios').action(async () => {
    process.exitCode = (await labCommands()).runLabList({ out: process.stdout, err: process.stderr });
  });
  lab
    .command('up')
    .description('build the lab topology (namespaces nw-*)')
    .option('--nft', "kube-proxy in nftables mode (table ip kube-proxy) instead of iptables mode; for the nft-* scenarios")
    .action(async (opts: { nft?: boolean }) => {
      process.exitCode = (await labCommands()).runLabUpDown('up', { out: process.stdout, err: process.stderr }, opts.nft ? ['--nft'] : []);
    });
  lab.command('down').description('remove everything the lab made, also after a crash').action(async () => {
    process.exitCode = (await labCommands()).runLabUpDown('down', { out: process.stdout, err: process.stderr });
  });
  lab
    .command('run')
    .description('up, apply the scenario, run its client under explain, show the verdict, down')
    .argument('<scenario>', 'a name from netwhy lab list')
    .option('--json', 'print the explain document as JSON')
    .option('--keep', 'leave the lab up afterwards')
    .option('--vm', 'run it in the microVM (Debian 6.1 kernel with IPVS and kprobes); needed for the ipvs-* scenarios here')
    .action(async (name: string, opts) => {
      process.exitCode = await (await labCommands()).runLabRun(name, opts);
    });

  addNameOptions(program
    .command('agent'))
    .description('run on every node: trace drops and the path of their flows, explain each failing flow once, count drops by cause for Prometheus')
    .argument('[filter...]', 'only drops matching this filter (the trace filter language); default: every drop')
    .option('--listen <addr>', 'serve /metrics, /explanations, /healthz, /readyz here (ADDRESS:PORT, [V6]:PORT, :PORT)', DEFAULT_LISTEN)
    .option('--log <format>', 'one line per explained failing flow on stdout: json (for kubectl logs, Fluent Bit, Loki) or text', 'json')
    .option('--recent <n>', 'explanations kept for GET /explanations', (v) => Number(v), 256)
    .option('--max-series <n>', 'distinct label sets of netwhy_drops_total at most; beyond, drops count in cause="overflow"', (v) => Number(v), 1000)
    .option('--ring-mb <mb>', 'ring buffer size in MiB (a power of two)', positiveNumber, 8)
    .addHelpText(
      'after',
      `
Examples:
  netwhy agent                                   every drop on this node, metrics on ${DEFAULT_LISTEN}
  netwhy agent --listen :9965 --log text         on every address, explanations as text
  netwhy agent net 10.244.0.0/16                 only drops of the pod network

A drop seeds its flow in the kernel: the flow's next packets (retransmissions,
replies) are traced hop by hop with their route lookups, so the verdict has the
evidence explain would have. Each failing flow is explained once per cause (a
JSON line on stdout); netwhy_drops_total counts every drop by reason and cause.
SIGTERM or SIGINT detaches and exits 0 within 2 s; SIGHUP re-reads the
Kubernetes name sources (pods, Services and NetworkPolicies are named in the
explanations and pod_namespace). Operational messages go to stderr.`,
    )
    .action(async (filter: string[], opts) => {
      process.exitCode = await (await import('./commands/agent.js')).runAgent(filter, opts);
      // Detached and flushed: a state snapshot still running (ip, iptables-save) must not hold the exit past 2 s.
      setTimeout(() => process.exit(), 300).unref();
    });

  addNameOptions(program
    .command('doctor')
    .description('check this kernel and these privileges: which probes attach, in which mode, and why not; and which Kubernetes name sources answer')
    .option('--json', 'print the report as JSON')
    .option('--ipvs', 'also fail on what kube-proxy\'s IPVS mode needs of this node (modules, ip_forward, bridge-nf-call-iptables, rp_filter, vs.conntrack)')
    .option('--reasons', 'also list every drop reason this kernel defines, what it means, and which rule of netwhy explains it')
    .option('--netns <names>', 'also report the netfilter front-ends of these network namespaces (comma-separated, as ip netns lists them)', (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean)))
    .addHelpText(
      'after',
      `
Each probe takes the best attach mode this kernel allows:
fentry/fexit, then kprobe/kretprobe, then tp_btf, raw_tp, tracepoint.
NETWHY_AVOID_MODES=fentry,fexit (any of those, comma-separated) passes modes
over for every command, e.g. on a kernel where one misbehaves.

It also lists where Kubernetes names come from on this node (containerd,
crictl, the CNI result cache, kube-proxy's rules, the API server), each with
its status: a source that is absent is no problem.`,
    )
    .action(async (opts) => {
      process.exitCode = await (await import('./commands/doctor.js')).runDoctor(opts);
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has printed the message (and help) already
      return e.exitCode === 0 ? 0 : ExitCode.USAGE;
    }
    if (e instanceof NetwhyError) {
      process.stderr.write(`${ERROR_PREFIX}${e.message}\n${e.hint ? `  hint: ${e.hint}\n` : ''}`);
      return e.exitCode;
    }
    process.stderr.write(`${ERROR_PREFIX}internal error: ${(e as Error).stack ?? e}\n`);
    return ExitCode.FAILURE;
  }
}

/**
 * A reader that went away (`netwhy lab list | head -1`) ends the command
 * quietly, as with any Unix tool. A command that streams (trace) listens for
 * EPIPE itself to stop its probes first; then this one stands aside.
 */
function quietOnEpipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    if (stream.listenerCount('error') > 1) return;
    process.exit(Number(process.exitCode ?? 0));
  });
}
quietOnEpipe(process.stdout);
quietOnEpipe(process.stderr);

main(process.argv).then((code) => {
  process.exitCode = code;
});

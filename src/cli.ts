#!/usr/bin/env node
// The netwhy command line: parse, dispatch, and one error boundary.
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { NetwhyError, ExitCode } from './errors.js';
import { runDoctor } from './commands/doctor.js';
import { runTrace } from './commands/trace.js';

function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

export function buildProgram(): Command {
  const program = new Command('netwhy')
    .description('Trace packets in the kernel and say why they were dropped or rewritten.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('trace')
    .description('show, live, every drop (and with a filter every hop) of matching packets')
    .argument('[filter...]', 'tcpdump-like filter: host, net, port, portrange, src/dst, tcp, udp, icmp, ip, ip6, proto, netns; and/or/not, ( )')
    .option('--json', 'one JSON object per event, and a summary object at the end')
    .option('-c, --count <n>', 'stop after n events', positiveNumber)
    .option('-d, --duration <seconds>', 'stop after this many seconds', positiveNumber)
    .option('--events <kinds>', 'which events: drop,rx,tx,route (default: all with a filter, drop without)')
    .option('--ring-mb <mb>', 'ring buffer size in MiB (a power of two)', positiveNumber, 8)
    .addHelpText(
      'after',
      `
Examples:
  netwhy trace                                   every drop on this machine, with its reason
  netwhy trace host 10.0.0.1 and port 30080      every hop of one client's NodePort traffic
  netwhy trace udp port 53 and netns node1       DNS in one network namespace
  netwhy trace net 10.244.0.0/16 --json -c 100   pod network, 100 events as JSON lines

A packet matches if its own addresses or its conntrack original tuple match,
so NAT-ed packets and their replies stay in a filtered trace.`,
    )
    .action(async (filter: string[], opts) => {
      process.exitCode = await runTrace(filter, opts);
    });

  program
    .command('doctor')
    .description('check this kernel and these privileges: which probes attach, in which mode, and why not')
    .option('--json', 'print the report as JSON')
    .action((opts) => {
      process.exitCode = runDoctor(opts);
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
      process.stderr.write(`netwhy: ${e.message}\n${e.hint ? `  hint: ${e.hint}\n` : ''}`);
      return e.exitCode;
    }
    process.stderr.write(`netwhy: internal error: ${(e as Error).stack ?? e}\n`);
    return ExitCode.FAILURE;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});

// The words of one iptables-save rule after `-A CHAIN`: generic options (-p, -s, -i, -f…),
// `-m` modules and their options (built into Conditions by iptables-modules.ts), the target and
// its words, and -c counters. Pure code: no IO.
import type { Condition, Counters } from '../../model/netfilter/xt-ruleset.js';
import { type ModInst, MODULE_OPTS, buildModule, parseAddrMask } from './iptables-modules.js';
import type { PendingTarget } from './iptables-targets.js';
import { protoNumber } from './syntax.js';

const GENERIC_OPTS = new Set([
  '-p', '--protocol', '-s', '--source', '--src', '-d', '--destination', '--dst', '-i', '--in-interface',
  '-o', '--out-interface', '-f', '--fragment', '-m', '--match', '-j', '--jump', '-g', '--goto', '-c',
  '--set-counters',
]);


const OPT_ALIASES: Record<string, string> = {
  '--source-port': '--sport', '--destination-port': '--dport', '--source-ports': '--sports',
  '--destination-ports': '--dports', '--set': '--match-set',
};

const IMPLICIT_PROTO_MODULE: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmp6', 132: 'sctp' };

interface ParsedArgs {
  conditions: Condition[];
  target: PendingTarget | null;
  comment?: string;
  counters?: Counters;
}

export function parseRuleArgs(words: string[], fail: (r: string) => never): ParsedArgs {
  const conditions: Condition[] = [];
  const mods: ModInst[] = [];
  let target: PendingTarget | null = null;
  let counters: Counters | undefined;
  let implicitProto: string | undefined;
  let neg = false;
  let i = 0;
  const value = (opt: string): string => {
    if (i >= words.length) fail(`option ${opt} needs a value`);
    return words[i++];
  };
  /** Is the word at j the start of another option (so not a value of an unknown option)? */
  const startsOption = (j: number) =>
    words[j].startsWith('-') || (words[j] === '!' && j + 1 < words.length && words[j + 1].startsWith('-'));
  while (i < words.length) {
    const w = words[i++];
    if (w === '!') {
      if (neg) fail('two ! in a row');
      neg = true;
      continue;
    }
    const n = neg;
    neg = false;
    switch (w) {
      case '-p':
      case '--protocol': {
        let v = value(w);
        let pn = n;
        if (v === '!') {
          pn = true; // old syntax: -p ! tcp
          v = value(w);
        }
        const proto = protoNumber(v);
        const text = `${pn ? '! ' : ''}-p ${v}`;
        if (proto === null) {
          conditions.push({ kind: 'unknown', why: `unknown protocol ${v}`, neg: pn, text });
        } else {
          conditions.push({ kind: 'proto', proto, neg: pn, text });
          if (!pn) implicitProto = IMPLICIT_PROTO_MODULE[proto];
        }
        break;
      }
      case '-s':
      case '--source':
      case '--src':
      case '-d':
      case '--destination':
      case '--dst': {
        const v = value(w);
        const dir = w === '-s' || w === '--source' || w === '--src' ? 'src' : 'dst';
        const text = `${n ? '! ' : ''}${dir === 'src' ? '-s' : '-d'} ${v}`;
        const net = parseAddrMask(v);
        conditions.push(net ? { kind: 'addr', dir, net, neg: n, text } : { kind: 'unknown', why: `bad address ${v}`, neg: n, text });
        break;
      }
      case '-i':
      case '--in-interface':
      case '-o':
      case '--out-interface': {
        const v = value(w);
        const dir = w === '-i' || w === '--in-interface' ? 'in' : 'out';
        conditions.push({ kind: 'iface', dir, name: v, neg: n, text: `${n ? '! ' : ''}${dir === 'in' ? '-i' : '-o'} ${v}` });
        break;
      }
      case '-f':
      case '--fragment':
        conditions.push({ kind: 'fragment', neg: n, text: `${n ? '! ' : ''}-f` });
        break;
      case '-m':
      case '--match': {
        if (n) fail('! before -m');
        mods.push({ name: value(w), opts: [], unknown: [] });
        const mod = mods[mods.length - 1];
        if (!MODULE_OPTS[mod.name]) {
          // Unknown match: its options run until the next generic option.
          while (i < words.length && !(GENERIC_OPTS.has(words[i]) || (words[i] === '!' && GENERIC_OPTS.has(words[i + 1] ?? '')))) {
            mod.unknown.push(words[i++]);
          }
        }
        break;
      }
      case '-j':
      case '--jump':
      case '-g':
      case '--goto': {
        if (n) fail(`! before ${w}`);
        if (target) fail('more than one -j/-g');
        const name = value(w);
        const args: string[] = [];
        while (i < words.length && !GENERIC_OPTS.has(words[i]) && words[i] !== '!') args.push(words[i++]);
        target = { name, goto: w === '-g' || w === '--goto', args };
        break;
      }
      case '-c':
      case '--set-counters': {
        if (n) fail('! before -c');
        const p = value(w);
        const b = value(w);
        if (!/^\d+$/.test(p) || !/^\d+$/.test(b)) fail('-c needs two numbers');
        counters = { packets: Number(p), bytes: Number(b) };
        break;
      }
      default: {
        if (!w.startsWith('--')) fail(`unexpected word ${JSON.stringify(w)}`);
        const opt = OPT_ALIASES[w] ?? w;
        // The option belongs to the most recent match that has it, else to the -p protocol's match.
        let owner: ModInst | undefined;
        for (let k = mods.length - 1; k >= 0 && !owner; k--) {
          if (MODULE_OPTS[mods[k].name]?.[opt] !== undefined) owner = mods[k];
        }
        if (!owner && implicitProto && MODULE_OPTS[implicitProto][opt] !== undefined) {
          owner = { name: implicitProto, opts: [], unknown: [] };
          mods.push(owner);
        }
        if (!owner) {
          const unknown = [n ? '!' : '', w].filter((s) => s !== '');
          while (i < words.length && !startsOption(i)) unknown.push(words[i++]);
          const last = mods[mods.length - 1];
          if (last) last.unknown.push(...unknown);
          else conditions.push({ kind: 'unknown', why: `unknown option ${w}`, neg: false, text: unknown.join(' ') });
          break;
        }
        const arity = MODULE_OPTS[owner.name][opt];
        const args: string[] = [];
        for (let k = 0; k < arity; k++) args.push(value(w));
        owner.opts.push({ name: opt, args, neg: n });
      }
    }
  }
  if (neg) fail('! at the end of the rule');
  let comment: string | undefined;
  for (const mod of mods) {
    const built = buildModule(mod);
    conditions.push(...built.conditions);
    if (built.comment !== undefined) comment = comment === undefined ? built.comment : `${comment}; ${built.comment}`;
  }
  return { conditions, target, comment, counters };
}


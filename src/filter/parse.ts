// The filter language: what a tcpdump user would guess.
//   host 10.0.0.1 and port 30080     net 10.244.0.0/16     udp     tcp port 53
//   src host 10.0.0.1   dst portrange 30000-32767   not icmp   netns node1
//   ip6   proto 132   (udp or icmp) and not port 22
//   pod default/web-7c9f   svc shop/cart   (Kubernetes names, resolved before compiling: filter/k8s.ts)
// Operators: and / && , or / || , not / ! , parentheses.
import { AF_INET, AF_INET6 } from '../abi.js';
import { ipBytes, parseIp } from '../model/ip.js';
import { PROTOCOLS } from '../model/protocols.js';

export type Dir = 'any' | 'src' | 'dst';

export type Term =
  | { t: 'proto'; proto: number }
  | { t: 'family'; family: number }
  | { t: 'addr'; dir: Dir; family: number; addr: Uint8Array; prefix: number }
  | { t: 'port'; dir: Dir; lo: number; hi: number }
  | { t: 'netns'; name: string }
  /** a pod's or Service's traffic, by name; filter/k8s.ts turns it into the terms above */
  | { t: 'k8s'; kind: 'pod' | 'service'; namespace: string; name: string; col: number };

export type Expr =
  | { op: 'and' | 'or'; a: Expr; b: Expr }
  | { op: 'not'; e: Expr }
  | { op: 'term'; term: Term };

export class FilterError extends Error {
  constructor(message: string, readonly source: string, readonly column: number) {
    super(`${message} at column ${column + 1}\n  ${source}\n  ${' '.repeat(column)}^`);
  }
}


interface Token {
  text: string;
  col: number;
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const re = /\s*(\(|\)|&&|\|\||!|[^\s()!&|]+|[&|])/y;
  let m: RegExpExecArray | null;
  re.lastIndex = 0;
  while (re.lastIndex < src.length && (m = re.exec(src))) {
    out.push({ text: m[1], col: m.index + m[0].length - m[1].length });
  }
  return out;
}

export function parseAddress(text: string): { family: number; bytes: Uint8Array } | null {
  const ip = parseIp(text);
  return ip ? { family: ip.family === 4 ? AF_INET : AF_INET6, bytes: ipBytes(ip) } : null;
}

/** Bounds that keep a hostile filter from exhausting the stack (the kernel side holds far less anyway). */
export const MAX_FILTER_DEPTH = 64;
export const MAX_FILTER_TERMS = 256;

class Parser {
  private i = 0;
  private depth = 0;
  private terms = 0;
  constructor(private readonly src: string, private readonly toks: Token[]) {}

  private peek(): Token | undefined {
    return this.toks[this.i];
  }
  private fail(msg: string, tok = this.peek()): never {
    throw new FilterError(msg, this.src, tok ? tok.col : this.src.length);
  }
  private next(what: string): Token {
    const t = this.toks[this.i];
    if (!t) this.fail(`expected ${what}, found the end of the filter`);
    this.i++;
    return t;
  }
  private is(...words: string[]): boolean {
    const t = this.peek();
    return !!t && words.includes(t.text.toLowerCase());
  }

  parse(): Expr {
    if (this.toks.length === 0) this.fail('empty filter');
    const e = this.or();
    if (this.peek()) this.fail(`unexpected '${this.peek()!.text}' (missing 'and' or 'or'?)`);
    return e;
  }

  private or(): Expr {
    let e = this.and();
    while (this.is('or', '||')) {
      this.i++;
      e = { op: 'or', a: e, b: this.and() };
    }
    return e;
  }

  private and(): Expr {
    let e = this.unary();
    while (this.is('and', '&&')) {
      this.i++;
      e = { op: 'and', a: e, b: this.unary() };
    }
    return e;
  }

  private unary(): Expr {
    if (this.is('not', '!', '(')) {
      if (++this.depth > MAX_FILTER_DEPTH) this.fail(`filter nested too deeply (more than ${MAX_FILTER_DEPTH} levels of 'not' and parentheses)`);
      try {
        if (this.is('not', '!')) {
          this.i++;
          return { op: 'not', e: this.unary() };
        }
        const open = this.next('(');
        const e = this.or();
        if (!this.is(')')) this.fail(`missing ')' for the '(' at column ${open.col + 1}`);
        this.i++;
        return e;
      } finally {
        this.depth--;
      }
    }
    if (++this.terms > MAX_FILTER_TERMS) this.fail(`filter too long (more than ${MAX_FILTER_TERMS} terms)`);
    return this.primitive();
  }

  private primitive(): Expr {
    const tok = this.peek();
    if (!tok) this.fail('expected a filter term (host, net, port, tcp, udp, netns, pod, svc, ...)');
    const w = tok.text.toLowerCase();
    if (w in PROTOCOLS || w === 'proto') {
      this.i++;
      let proto = PROTOCOLS[w];
      if (w === 'proto') {
        const v = this.next('a protocol number or name');
        proto = PROTOCOLS[v.text.toLowerCase()] ?? Number(v.text);
        if (!Number.isInteger(proto) || proto < 0 || proto > 255) this.fail(`'${v.text}' is not a protocol`, v);
      }
      const term: Expr = { op: 'term', term: { t: 'proto', proto } };
      // tcpdump's "tcp port 53": a protocol qualifies the term that follows.
      if (this.is('src', 'dst', 'host', 'net', 'port', 'portrange')) return { op: 'and', a: term, b: this.qualified() };
      return term;
    }
    if (w === 'ip' || w === 'ip6') {
      this.i++;
      return { op: 'term', term: { t: 'family', family: w === 'ip' ? AF_INET : AF_INET6 } };
    }
    if (w === 'netns') {
      this.i++;
      const name = this.next('a network namespace name (as `ip netns` lists it) or inode');
      return { op: 'term', term: { t: 'netns', name: name.text } };
    }
    if (w === 'pod' || w === 'svc' || w === 'service') {
      this.i++;
      const v = this.next(`a ${w === 'pod' ? 'pod' : 'Service'} as NAMESPACE/NAME`);
      const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(v.text);
      if (!m) this.fail(`'${v.text}' is not NAMESPACE/NAME (e.g. default/web)`, v);
      return { op: 'term', term: { t: 'k8s', kind: w === 'pod' ? 'pod' : 'service', namespace: m[1], name: m[3], col: v.col } };
    }
    return this.qualified();
  }

  private qualified(): Expr {
    let dir: Dir = 'any';
    if (this.is('src', 'dst')) dir = this.next('src/dst').text.toLowerCase() as Dir;
    const kindTok = this.peek();
    if (!kindTok) this.fail(`expected host, net, port or portrange`);
    const kind = kindTok.text.toLowerCase();
    if (kind === 'host' || kind === 'net') {
      this.i++;
      return { op: 'term', term: this.address(kind, dir) };
    }
    if (kind === 'port' || kind === 'portrange') {
      this.i++;
      const v = this.next(kind === 'port' ? 'a port number' : 'a port range like 30000-32767');
      const m = kind === 'port' ? /^(\d+)$/.exec(v.text) : /^(\d+)-(\d+)$/.exec(v.text);
      const lo = m ? Number(m[1]) : NaN;
      const hi = m ? Number(m[2] ?? m[1]) : NaN;
      if (!m || lo > 65535 || hi > 65535 || lo > hi) {
        this.fail(kind === 'port' ? `'${v.text}' is not a port (0-65535)` : `'${v.text}' is not a port range (lo-hi, 0-65535)`, v);
      }
      return { op: 'term', term: { t: 'port', dir, lo, hi } };
    }
    // "src 10.0.0.1" means "src host 10.0.0.1"; a bare address is a host too.
    if (parseAddress(kind) || (dir !== 'any' && kind.includes('/'))) return { op: 'term', term: this.address('host', dir) };
    this.fail(`unknown filter term '${kindTok.text}' (expected host, net, port, portrange, tcp, udp, icmp, ip, ip6, proto, netns, pod, svc)`);
  }

  private address(kind: 'host' | 'net', dir: Dir): Term {
    const v = this.next(kind === 'host' ? 'an IP address' : 'a network like 10.244.0.0/16');
    const [text, prefixText] = v.text.split('/');
    const a = parseAddress(text);
    if (!a) this.fail(`'${text}' is not an IPv4 or IPv6 address`, v);
    const max = a.family === AF_INET ? 32 : 128;
    let prefix = max;
    if (prefixText !== undefined) {
      if (kind === 'host') this.fail(`'host' takes one address; use 'net ${v.text}' for a network`, v);
      prefix = /^\d+$/.test(prefixText) ? Number(prefixText) : NaN;
      if (!(prefix >= 0 && prefix <= max)) this.fail(`'/${prefixText}' is not a prefix length (0-${max})`, v);
    } else if (kind === 'net') {
      this.fail(`'net' needs a prefix length, like ${text}/${max === 32 ? 24 : 64}`, v);
    }
    return { t: 'addr', dir, family: a.family, addr: a.bytes, prefix };
  }
}

export function parseFilter(src: string): Expr {
  return new Parser(src, tokenize(src)).parse();
}

// From a filter expression to the nw_filter map value (bpf/netwhy.h): the
// expression in disjunctive normal form, one clause per conjunction.
import { FILTER_CLAUSES, FILTER_TERMS, FilterMode, LAYOUT, TermKind } from '../abi.js';
import { type K8sFilterNames, expandK8s } from './k8s.js';
import { type Expr, FilterError, type Term, parseFilter } from './parse.js';

export interface Literal {
  term: Term;
  negate: boolean;
}

export type Dnf = Literal[][];

const MAX_EXPANSION = 64;

/** Push negations to the terms and distribute 'and' over 'or'. */
export function toDnf(e: Expr, negate = false): Dnf {
  switch (e.op) {
    case 'term':
      return [[{ term: e.term, negate }]];
    case 'not':
      return toDnf(e.e, !negate);
    case 'and':
    case 'or': {
      const a = toDnf(e.a, negate);
      const b = toDnf(e.b, negate);
      const conj = (e.op === 'and') !== negate;
      if (!conj) return [...a, ...b];
      if (a.length * b.length > MAX_EXPANSION) throw new RangeError('expansion');
      return a.flatMap((x) => b.map((y) => [...x, ...y]));
    }
  }
}

export type NetnsResolver = (name: string) => number | undefined;

function writeTerm(dv: DataView, bytes: Uint8Array, off: number, lit: Literal, netns: NetnsResolver, src: string): void {
  const T = LAYOUT.nw_term;
  const { term } = lit;
  bytes[off + T.negate] = lit.negate ? 1 : 0;
  switch (term.t) {
    case 'proto':
      bytes[off + T.kind] = TermKind.PROTO;
      dv.setUint32(off + T.lo, term.proto, true);
      break;
    case 'family':
      bytes[off + T.kind] = TermKind.FAMILY;
      dv.setUint32(off + T.lo, term.family, true);
      break;
    case 'addr': {
      bytes[off + T.kind] = term.dir === 'src' ? TermKind.SRC : term.dir === 'dst' ? TermKind.DST : TermKind.HOST;
      bytes[off + T.family] = term.family;
      const len = term.addr.length;
      for (let i = 0; i < len; i++) {
        const bits = Math.max(0, Math.min(8, term.prefix - i * 8));
        const m = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
        bytes[off + T.mask + i] = m;
        bytes[off + T.addr + i] = term.addr[i] & m;
      }
      break;
    }
    case 'port':
      bytes[off + T.kind] = term.dir === 'src' ? TermKind.SPORT : term.dir === 'dst' ? TermKind.DPORT : TermKind.PORT;
      dv.setUint32(off + T.lo, term.lo, true);
      dv.setUint32(off + T.hi, term.hi, true);
      break;
    case 'k8s':
      throw new FilterError('internal: a Kubernetes term reached the compiler unexpanded', src, term.col);
    case 'netns': {
      // A bare inode (a pod's netns from the name sources) needs no name.
      const ino = netns(term.name) ?? (/^\d+$/.test(term.name) ? Number(term.name) : undefined);
      if (ino === undefined) throw new FilterError(`unknown network namespace '${term.name}'`, src, src.indexOf(term.name));
      bytes[off + T.kind] = TermKind.NETNS;
      dv.setUint32(off + T.lo, ino, true);
      break;
    }
  }
}

/** The map value for "no filter" or "follow", which carry no clauses. */
export function filterValue(mode: number, dnf: Dnf = [], netns: NetnsResolver = () => undefined, src = ''): Uint8Array {
  const F = LAYOUT.nw_filter;
  const C = LAYOUT.nw_clause;
  const bytes = new Uint8Array(F.size);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(F.mode, mode, true);
  dv.setUint32(F.nclauses, dnf.length, true);
  dnf.forEach((clause, ci) => {
    const coff = F.clauses + ci * C.size;
    dv.setUint32(coff + C.nterms, clause.length, true);
    clause.forEach((lit, ti) => writeTerm(dv, bytes, coff + C.terms + ti * LAYOUT.nw_term.size, lit, netns, src));
  });
  return bytes;
}

/**
 * Parse and compile a filter; throws FilterError with the column on bad input. `pod`/`svc` terms need names.
 * mode: STATIC (the clauses decide), or DROPS (matching drops seed followed flows: the agent).
 */
export function compileFilter(src: string, netns: NetnsResolver, names?: K8sFilterNames, mode: number = FilterMode.STATIC): { dnf: Dnf; value: Uint8Array } {
  const expr = expandK8s(parseFilter(src), names, src);
  let dnf: Dnf;
  try {
    dnf = toDnf(expr);
  } catch (e) {
    if (e instanceof RangeError) throw new FilterError(`filter too complex for the kernel (more than ${FILTER_CLAUSES} alternatives once expanded)`, src, 0);
    throw e;
  }
  if (dnf.length > FILTER_CLAUSES) {
    throw new FilterError(`filter too complex for the kernel: ${dnf.length} alternatives once expanded (at most ${FILTER_CLAUSES})`, src, 0);
  }
  const wide = dnf.find((c) => c.length > FILTER_TERMS);
  if (wide) throw new FilterError(`filter too complex for the kernel: ${wide.length} terms in one alternative (at most ${FILTER_TERMS})`, src, 0);
  return { dnf, value: filterValue(mode, dnf, netns, src) };
}

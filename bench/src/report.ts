// The bench's table: one row per figure, netwhy beside its peer, the ratio,
// the DESIGN target and whether it is met.

export interface Row {
  section: string;
  metric: string;
  unit: string;
  netwhy: number | null;
  peer?: number | null;
  /** What the peer column is: bpftrace, untraced, ... */
  peerName?: string;
  /** netwhy / peer, unless the row says otherwise. */
  ratio?: number | null;
  target?: string;
  ok?: boolean | null;
  note?: string;
}

export function fmtNum(v: number | null | undefined, unit = ''): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  let s: string;
  if (a >= 1e6) s = `${(v / 1e6).toFixed(a >= 1e8 ? 0 : 2)} M`;
  else if (a >= 1e4) s = `${(v / 1e3).toFixed(a >= 1e5 ? 0 : 1)} k`;
  else if (a >= 100 || Number.isInteger(v)) s = v.toFixed(0);
  else if (a >= 10) s = v.toFixed(1);
  else s = v.toFixed(2);
  return unit ? `${s} ${unit}`.replace('  ', ' ') : s;
}

function fmtRatio(r: number | null | undefined): string {
  if (r === null || r === undefined || !Number.isFinite(r)) return '';
  return r >= 100 ? `${r.toFixed(0)}x` : r >= 10 ? `${r.toFixed(1)}x` : `${r.toFixed(2)}x`;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function renderTable(rows: Row[]): string {
  const cells = rows.map((r) => [
    `  ${r.metric}`,
    fmtNum(r.netwhy, r.unit),
    r.peer === undefined ? '' : `${fmtNum(r.peer, r.unit)}${r.peerName ? ` (${r.peerName})` : ''}`,
    fmtRatio(r.ratio),
    r.target ?? '',
    r.ok === undefined || r.ok === null ? '' : r.ok ? 'ok' : 'MISS',
  ]);
  const head = ['metric', 'netwhy', 'peer', 'ratio', 'target', 'ok?'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((x, i) => pad(x, widths[i])).join(' | ').trimEnd();
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('-|-')];
  let section = '';
  rows.forEach((r, i) => {
    if (r.section !== section) {
      section = r.section;
      out.push(`${section}:`);
    }
    out.push(line(cells[i]));
  });
  const notes = rows.filter((r) => r.note).map((r) => `  - ${r.metric}: ${r.note}`);
  if (notes.length) out.push('', 'notes:', ...notes);
  return out.join('\n');
}

// A minimal reader of BTF (the kernel's type format): enough to read an enum's
// names and values from /sys/kernel/btf/vmlinux. Drop reasons are read this
// way because their numbers changed between kernel releases.

const BTF_MAGIC = 0xeb9f;

const enum Kind {
  INT = 1, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT,
  FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64,
}

export class BtfError extends Error {}

/** Bytes that follow the 12-byte btf_type header, by kind. */
function extraBytes(kind: number, vlen: number): number {
  switch (kind) {
    case Kind.INT: case Kind.VAR: case Kind.DECL_TAG: return 4;
    case Kind.ARRAY: return 12;
    case Kind.STRUCT: case Kind.UNION: case Kind.DATASEC: case Kind.ENUM64: return vlen * 12;
    case Kind.ENUM: case Kind.FUNC_PROTO: return vlen * 8;
    case Kind.PTR: case Kind.FWD: case Kind.TYPEDEF: case Kind.VOLATILE: case Kind.CONST:
    case Kind.RESTRICT: case Kind.FUNC: case Kind.FLOAT: case Kind.TYPE_TAG: return 0;
    default: throw new BtfError(`unknown BTF kind ${kind}`);
  }
}

/** Name → value of every enumerator of the (first) enum called `name`, or null if absent. */
export function readEnum(btf: Uint8Array, name: string): Map<string, number> | null {
  const dv = new DataView(btf.buffer, btf.byteOffset, btf.byteLength);
  if (btf.length < 24 || dv.getUint16(0, true) !== BTF_MAGIC) throw new BtfError('not BTF data (bad magic)');
  const hdrLen = dv.getUint32(4, true);
  const typeOff = hdrLen + dv.getUint32(8, true);
  const typeLen = dv.getUint32(12, true);
  const strOff = hdrLen + dv.getUint32(16, true);
  const strLen = dv.getUint32(20, true);
  if (typeOff + typeLen > btf.length || strOff + strLen > btf.length) throw new BtfError('BTF sections run past the data');

  const want = new TextEncoder().encode(name);
  const strAt = (off: number): string => {
    let end = strOff + off;
    while (end < strOff + strLen && btf[end] !== 0) end++;
    return new TextDecoder().decode(btf.subarray(strOff + off, end));
  };
  const nameIs = (off: number): boolean => {
    const s = strOff + off;
    for (let i = 0; i < want.length; i++) if (btf[s + i] !== want[i]) return false;
    return btf[s + want.length] === 0;
  };

  let p = typeOff;
  const end = typeOff + typeLen;
  while (p + 12 <= end) {
    const nameOff = dv.getUint32(p, true);
    const info = dv.getUint32(p + 4, true);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    if ((kind === Kind.ENUM || kind === Kind.ENUM64) && nameIs(nameOff)) {
      const out = new Map<string, number>();
      const step = kind === Kind.ENUM ? 8 : 12;
      const signed = (info >>> 31) === 1;
      for (let i = 0; i < vlen; i++) {
        const m = p + 12 + i * step;
        const v = kind === Kind.ENUM
          ? (signed ? dv.getInt32(m + 4, true) : dv.getUint32(m + 4, true))
          : dv.getUint32(m + 4, true) + dv.getUint32(m + 8, true) * 0x1_0000_0000;
        out.set(strAt(dv.getUint32(m, true)), v);
      }
      return out;
    }
    p += 12 + extraBytes(kind, vlen);
  }
  return null;
}

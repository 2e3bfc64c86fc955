// `make -C bpf ARCH=…` builds the BPF object for every architecture netwhy ships a
// vmlinux.h for, and the objects agree. Builds into a temp dir (OUT=), so the
// host's bpf/build/netwhy.bpf.o is left alone; needs clang and bpftool, not root.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BPF_DIR = resolve(__dirname, '../../bpf');
const ARCHES = ['x86', 'arm64'] as const;
const EM_BPF = 247;

interface Elf {
  machine: number;
  elf64: boolean;
  littleEndian: boolean;
  sections: Map<string, Buffer>;
}

/** The header fields and named sections of an ELF64 little-endian file. */
function readElf(buf: Buffer): Elf {
  expect(buf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  const elf64 = buf[4] === 2;
  const littleEndian = buf[5] === 1;
  const machine = buf.readUInt16LE(18);
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  const header = (i: number) => {
    const at = shoff + i * shentsize;
    const offset = Number(buf.readBigUInt64LE(at + 0x18));
    return { name: buf.readUInt32LE(at), data: buf.subarray(offset, offset + Number(buf.readBigUInt64LE(at + 0x20))) };
  };
  const names = header(shstrndx).data;
  const sections = new Map<string, Buffer>();
  for (let i = 1; i < shnum; i++) {
    const { name, data } = header(i);
    sections.set(names.toString('latin1', name, names.indexOf(0, name)), data);
  }
  return { machine, elf64, littleEndian, sections };
}

/** The names in a .BTF section's string table. */
function btfStrings(btf: Buffer): Set<string> {
  expect(btf.readUInt16LE(0)).toBe(0xeb9f);
  const hdrLen = btf.readUInt32LE(4);
  const strOff = btf.readUInt32LE(16);
  const strLen = btf.readUInt32LE(20);
  return new Set(btf.toString('latin1', hdrLen + strOff, hdrLen + strOff + strLen).split('\0'));
}

/** Every SEC("…") the C sources declare. */
function declaredSections(): string[] {
  const found = new Set<string>();
  for (const f of readdirSync(BPF_DIR).filter((n) => n.endsWith('.bpf.c'))) {
    for (const m of readFileSync(join(BPF_DIR, f), 'utf8').matchAll(/\bSEC\("([^"]+)"\)/g)) found.add(m[1]);
  }
  return [...found].sort();
}

describe('BPF object per architecture (make -C bpf ARCH=x86|arm64)', () => {
  const out = mkdtempSync(join(tmpdir(), 'nw-bpf-arch-'));
  const objects = new Map<string, Elf>();

  beforeAll(async () => {
    // Both builds at once: each is a handful of clang runs over a large vmlinux.h.
    await Promise.all(
      ARCHES.map((arch) => promisify(execFile)('make', ['-s', '-C', BPF_DIR, `ARCH=${arch}`, `OUT=${join(out, arch)}`], { maxBuffer: 16 << 20 })),
    );
    for (const arch of ARCHES) objects.set(arch, readElf(readFileSync(join(out, arch, 'netwhy.bpf.o'))));
  }, 300_000);

  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it.each(ARCHES)('%s: the linked object is a little-endian ELF64 for machine EM_BPF (247)', (arch) => {
    const elf = objects.get(arch)!;
    expect({ machine: elf.machine, elf64: elf.elf64, littleEndian: elf.littleEndian }).toEqual({ machine: EM_BPF, elf64: true, littleEndian: true });
  });

  it('x86 and arm64 objects have the same section list, holding every SEC() of bpf/*.bpf.c plus .BTF and .BTF.ext', () => {
    const [x86, arm64] = ARCHES.map((arch) => [...objects.get(arch)!.sections.keys()]);
    expect(arm64).toEqual(x86);
    expect(x86).toEqual(expect.arrayContaining([...declaredSections(), '.BTF', '.BTF.ext']));
    expect(declaredSections()).toEqual(expect.arrayContaining(['kprobe/ip_vs_in_hook', 'kretprobe/ip_vs_in_hook', 'tp_btf/kfree_skb']));
  });

  it('ARCH reaches the compiler: only the arm64 object reads kprobe arguments through struct user_pt_regs', () => {
    const has = (arch: string) => btfStrings(objects.get(arch)!.sections.get('.BTF')!).has('user_pt_regs');
    expect({ x86: has('x86'), arm64: has('arm64') }).toEqual({ x86: false, arm64: true });
  });
});

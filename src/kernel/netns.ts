// Network namespace names: the inode the kernel reports ↔ the name `ip netns` shows.
import { readdirSync, readlinkSync, statSync } from 'node:fs';

export const NETNS_DIR = '/run/netns';

export class NetnsNames {
  private byInode = new Map<number, string>();
  private lastScan = 0;

  constructor(private readonly dir = NETNS_DIR) {
    this.scan();
  }

  /** Re-read /run/netns (at most every 200 ms: namespaces appear while we trace). */
  scan(force = false): void {
    const now = Date.now();
    if (!force && now - this.lastScan < 200) return;
    this.lastScan = now;
    const m = new Map<number, string>();
    try {
      const link = readlinkSync('/proc/1/ns/net'); // net:[4026531840]
      const ino = Number(/\[(\d+)\]/.exec(link)?.[1]);
      if (ino) m.set(ino, 'host');
    } catch {
      // not root, or no /proc: names fall back to inodes
    }
    let names: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch {
      names = [];
    }
    for (const name of names) {
      try {
        m.set(statSync(`${this.dir}/${name}`).ino, name);
      } catch {
        // raced with `ip netns del`
      }
    }
    this.byInode = m;
  }

  /** "client", "host", or the inode as a string. */
  name(inode: number): string {
    if (inode === 0) return '?';
    let n = this.byInode.get(inode);
    if (n === undefined) {
      this.scan();
      n = this.byInode.get(inode);
    }
    return n ?? String(inode);
  }

  inode(name: string): number | undefined {
    this.scan(true);
    for (const [ino, n] of this.byInode) if (n === name) return ino;
    return /^\d+$/.test(name) ? Number(name) : undefined;
  }
}

#!/usr/bin/env node
// Tiny servers for the netwhy lab. No dependencies: the lab must run on a
// bare node image (and later on bare VMs).
//
//   node servers.mjs http PORT [--host ADDR] [--name NAME] [--pidfile PATH]
//       any GET -> 200, body "NAME\n" (NAME defaults to the hostname)
//   node servers.mjs dns PORT [--host ADDR] [--answer IP] [--pidfile PATH]
//       UDP and TCP DNS: A for *.cluster.local -> IP (default 10.96.0.1),
//       other types under cluster.local -> NOERROR/no data, else NXDOMAIN
//   node servers.mjs tcp PORT [--host ADDR] [--pidfile PATH]
//       accepts a connection and closes it at once
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ZONE = 'cluster.local';
const TYPE_A = 1;
const CLASS_IN = 1;
const RCODE = { NOERROR: 0, FORMERR: 1, NXDOMAIN: 3, NOTIMP: 4 };

function log(msg) {
  process.stderr.write(`[${new Date().toISOString()}] ${msg}\n`);
}

// ---------------------------------------------------------------- DNS ----

class DnsFormatError extends Error {}

/**
 * Parse the header and the first question of a DNS message.
 * Returns { id, flags, qdcount, name, type, cls, questionEnd }.
 * Throws DnsFormatError if the message is malformed; returns null if it is
 * too short to even carry an ID (nothing sensible to answer).
 */
export function parseQuery(buf) {
  if (buf.length < 12) return null;
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const qdcount = buf.readUInt16BE(4);
  const header = { id, flags, qdcount };
  if (flags & 0x8000) throw Object.assign(new DnsFormatError('not a query'), { header });
  if (qdcount !== 1) throw Object.assign(new DnsFormatError(`qdcount ${qdcount}`), { header });

  const labels = [];
  let off = 12;
  let nameLen = 0;
  for (;;) {
    if (off >= buf.length) throw Object.assign(new DnsFormatError('truncated name'), { header });
    const len = buf[off];
    off += 1;
    if (len === 0) break;
    // A question name is never compressed (nothing precedes it to point at);
    // 0x40/0x80 label types are obsolete or reserved.
    if (len & 0xc0) throw Object.assign(new DnsFormatError('bad label type'), { header });
    if (off + len > buf.length) throw Object.assign(new DnsFormatError('truncated label'), { header });
    nameLen += len + 1;
    if (nameLen > 255) throw Object.assign(new DnsFormatError('name too long'), { header });
    labels.push(buf.toString('latin1', off, off + len));
    off += len;
  }
  if (off + 4 > buf.length) throw Object.assign(new DnsFormatError('truncated question'), { header });
  const type = buf.readUInt16BE(off);
  const cls = buf.readUInt16BE(off + 2);
  return { ...header, name: labels.join('.'), type, cls, questionEnd: off + 4 };
}

function ipv4Bytes(ip) {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return Buffer.from(parts);
}

function header(id, queryFlags, rcode, qdcount, ancount) {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  // QR=1, keep OPCODE and RD from the query, AA=1 (we are the zone), RA=1.
  const flags = 0x8000 | (queryFlags & 0x7900) | 0x0400 | 0x0080 | (rcode & 0xf);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(qdcount, 4);
  h.writeUInt16BE(ancount, 6);
  return h;
}

/** Build the response for one query message, or null to stay silent. */
export function answer(buf, answerIp) {
  let q;
  try {
    q = parseQuery(buf);
  } catch (err) {
    if (err instanceof DnsFormatError) {
      return header(err.header.id, err.header.flags, RCODE.FORMERR, 0, 0);
    }
    throw err;
  }
  if (q === null) return null;
  const question = buf.subarray(12, q.questionEnd);
  const opcode = (q.flags >> 11) & 0xf;
  if (opcode !== 0) return Buffer.concat([header(q.id, q.flags, RCODE.NOTIMP, 1, 0), question]);

  const name = q.name.toLowerCase().replace(/\.$/, '');
  const inZone = name === ZONE || name.endsWith(`.${ZONE}`);
  if (!inZone || q.cls !== CLASS_IN) {
    return Buffer.concat([header(q.id, q.flags, RCODE.NXDOMAIN, 1, 0), question]);
  }
  if (q.type !== TYPE_A || name === ZONE) {
    // The name exists (wildcard) but has no record of this type.
    return Buffer.concat([header(q.id, q.flags, RCODE.NOERROR, 1, 0), question]);
  }
  const rr = Buffer.alloc(16);
  rr.writeUInt16BE(0xc00c, 0); // pointer to the question name at offset 12
  rr.writeUInt16BE(TYPE_A, 2);
  rr.writeUInt16BE(CLASS_IN, 4);
  rr.writeUInt32BE(5, 6); // TTL: short, like CoreDNS's default for cluster.local
  rr.writeUInt16BE(4, 10);
  ipv4Bytes(answerIp).copy(rr, 12);
  return Buffer.concat([header(q.id, q.flags, RCODE.NOERROR, 1, 1), question, rr]);
}

function serveDns(port, host, answerIp) {
  ipv4Bytes(answerIp); // fail at start, not on the first query
  let pending = 2;
  const ready = () => {
    pending -= 1;
    if (pending === 0) log(`dns listening on ${host}:${port} (udp+tcp), answer ${answerIp}`);
  };

  const udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    const res = answer(msg, answerIp);
    if (res) udp.send(res, rinfo.port, rinfo.address);
  });
  udp.on('error', fatal);
  udp.bind(port, host, ready);

  // DNS over TCP: each message is prefixed with a 2-byte length.
  const tcp = createTcpServer((sock) => {
    let acc = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      acc = Buffer.concat([acc, chunk]);
      while (acc.length >= 2) {
        const len = acc.readUInt16BE(0);
        if (acc.length < 2 + len) break;
        const res = answer(acc.subarray(2, 2 + len), answerIp);
        acc = acc.subarray(2 + len);
        if (res) {
          const lenBuf = Buffer.alloc(2);
          lenBuf.writeUInt16BE(res.length, 0);
          sock.write(Buffer.concat([lenBuf, res]));
        }
      }
    });
    sock.on('error', () => sock.destroy());
  });
  tcp.on('error', fatal);
  tcp.listen(port, host, ready);
}

// ------------------------------------------------------------ HTTP, TCP ----

function serveHttp(port, host, name) {
  const server = createHttpServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${name}\n`);
  });
  server.on('error', fatal);
  server.listen(port, host, () => log(`http listening on ${host}:${port} as ${name}`));
}

function serveTcp(port, host) {
  const server = createTcpServer((sock) => {
    sock.on('error', () => {});
    sock.end();
  });
  server.on('error', fatal);
  server.listen(port, host, () => log(`tcp listening on ${host}:${port}`));
}

// ------------------------------------------------------------------ main ----

function fatal(err) {
  log(`fatal: ${err.message}`);
  process.exit(1);
}

function usage() {
  process.stderr.write(
    'usage: servers.mjs http|dns|tcp PORT [--host ADDR] [--name NAME] [--answer IP] [--pidfile PATH]\n',
  );
  process.exit(2);
}

function main() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        host: { type: 'string', default: '0.0.0.0' },
        name: { type: 'string', default: hostname() },
        answer: { type: 'string', default: '10.96.0.1' },
        pidfile: { type: 'string' },
      },
    });
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    usage();
  }
  const [mode, portArg] = parsed.positionals;
  const port = Number(portArg);
  if (!Number.isInteger(port) || port < 1 || port > 65535) usage();
  const { host, name, answer: answerIp, pidfile } = parsed.values;

  if (pidfile) writeFileSync(pidfile, `${process.pid}\n`);
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

  switch (mode) {
    case 'http':
      serveHttp(port, host, name);
      break;
    case 'dns':
      serveDns(port, host, answerIp);
      break;
    case 'tcp':
      serveTcp(port, host);
      break;
    default:
      usage();
  }
}

// Run only when executed, so the DNS codec can be imported by tests.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();

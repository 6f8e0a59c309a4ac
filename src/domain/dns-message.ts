/**
 * Just enough of the DNS wire format to relay queries: the id, the first
 * question (for events and logs) and the rcode, and the TCP framing.
 * Everything else passes through untouched.
 *
 * Pure and total: malformed input is a Left, never an exception.
 */
import { type Either, left, right } from 'fp-ts/lib/Either.js';

/** The 12-byte header is the least a message can be. */
export const HEADER_SIZE = 12;

export interface DnsSummary {
  readonly id: number;
  readonly response: boolean;
  readonly rcode: number;
  /** First question's name (lower-case, no trailing dot), or '' when none. */
  readonly name: string;
  /** First question's type, e.g. 1 (A), 28 (AAAA); 0 when none. */
  readonly type: number;
}

/** Reads a possibly compressed name at `offset`; Left on any malformation. */
const readName = (msg: Uint8Array, offset: number): Either<string, string> => {
  const labels: string[] = [];
  let pos = offset;
  let jumps = 0;
  let total = 0;
  for (;;) {
    if (pos >= msg.length) return left('name runs past the end');
    const len = msg[pos] ?? 0;
    if (len === 0) break;
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= msg.length) return left('truncated compression pointer');
      if (++jumps > 16) return left('compression loop');
      pos = ((len & 0x3f) << 8) | (msg[pos + 1] ?? 0);
      continue;
    }
    if ((len & 0xc0) !== 0) return left('bad label type');
    if (pos + 1 + len > msg.length) return left('label runs past the end');
    total += len + 1;
    if (total > 255) return left('name longer than 255 bytes');
    labels.push(String.fromCharCode(...msg.subarray(pos + 1, pos + 1 + len)).toLowerCase());
    pos += 1 + len;
  }
  return right(labels.join('.'));
};

/** Header fields and the first question of a DNS message. */
export const summarizeDns = (msg: Uint8Array): Either<string, DnsSummary> => {
  if (msg.length < HEADER_SIZE)
    return left(`message of ${msg.length} bytes is shorter than a header`);
  const id = ((msg[0] ?? 0) << 8) | (msg[1] ?? 0);
  const flags = ((msg[2] ?? 0) << 8) | (msg[3] ?? 0);
  const qdcount = ((msg[4] ?? 0) << 8) | (msg[5] ?? 0);
  const base = { id, response: (flags & 0x8000) !== 0, rcode: flags & 0x0f };
  if (qdcount === 0) return right({ ...base, name: '', type: 0 });
  const name = readName(msg, HEADER_SIZE);
  if (name._tag === 'Left') return name;
  // The question's type follows the name as written (no pointer at the top level).
  let pos = HEADER_SIZE;
  while (pos < msg.length && (msg[pos] ?? 0) !== 0 && ((msg[pos] ?? 0) & 0xc0) !== 0xc0) {
    pos += 1 + (msg[pos] ?? 0);
  }
  pos += (msg[pos] ?? 0) === 0 ? 1 : 2;
  if (pos + 4 > msg.length) return left('question runs past the end');
  return right({ ...base, name: name.right, type: ((msg[pos] ?? 0) << 8) | (msg[pos + 1] ?? 0) });
};

/** Skips a name at `pos` (labels or a pointer); the offset after it, or -1. */
const skipName = (msg: Uint8Array, pos: number): number => {
  for (let guard = 0; pos < msg.length && guard < 128; guard++) {
    const len = msg[pos] ?? 0;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) return pos + 2 <= msg.length ? pos + 2 : -1;
    pos += 1 + len;
  }
  return -1;
};

/** Classic DNS over UDP without EDNS allows 512 bytes (RFC 1035 4.2.1). */
export const CLASSIC_UDP_SIZE = 512;

/**
 * The largest UDP answer the asker accepts: the payload size of its EDNS
 * OPT record (RFC 6891), else 512. Anything malformed counts as 512.
 */
export const udpAnswerLimit = (query: Uint8Array): number => {
  if (query.length < HEADER_SIZE) return CLASSIC_UDP_SIZE;
  const count = (i: number) => ((query[i] ?? 0) << 8) | (query[i + 1] ?? 0);
  let pos = HEADER_SIZE;
  for (let q = count(4); q > 0; q--) {
    pos = skipName(query, pos);
    if (pos < 0) return CLASSIC_UDP_SIZE;
    pos += 4;
  }
  for (let rr = count(6) + count(8) + count(10); rr > 0 && pos < query.length; rr--) {
    pos = skipName(query, pos);
    if (pos < 0 || pos + 10 > query.length) return CLASSIC_UDP_SIZE;
    const type = count(pos);
    if (type === 41) return Math.max(CLASSIC_UDP_SIZE, count(pos + 2));
    pos += 10 + count(pos + 8);
  }
  return CLASSIC_UDP_SIZE;
};

/** Where the question section of `msg` ends (HEADER_SIZE when it does not parse). */
const questionEnd = (msg: Uint8Array): number => {
  const qdcount = ((msg[4] ?? 0) << 8) | (msg[5] ?? 0);
  let end = HEADER_SIZE;
  for (let q = qdcount; q > 0; q--) {
    const next = skipName(msg, end);
    if (next < 0 || next + 4 > msg.length) return HEADER_SIZE;
    end = next + 4;
  }
  return end;
};

/**
 * An answer that fits the asker's UDP limit: as it is when it fits, else
 * its header with TC (truncated) set and only the question, so the asker
 * retries over TCP (RFC 2181 9). Answers come over TCP here, so they can be
 * larger than a UDP asker accepts.
 */
export const fitUdpAnswer = (answer: Uint8Array, limit: number): Buffer => {
  if (answer.length <= limit || answer.length < HEADER_SIZE) {
    return Buffer.isBuffer(answer) ? answer : Buffer.from(answer);
  }
  let end = questionEnd(answer);
  if (end > limit) end = HEADER_SIZE;
  const out = Buffer.from(answer.subarray(0, end));
  out[2] = (out[2] ?? 0) | 0x02; // TC
  if (end === HEADER_SIZE) out.writeUInt16BE(0, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
};

// ---------------------------------------------------------------------------
// DNS over TCP framing (RFC 1035 4.2.2 / RFC 7766): a 2-byte length prefix
// ---------------------------------------------------------------------------

/** `msg` with its 2-byte length prefix, ready for a TCP stream. */
export const frameTcp = (msg: Uint8Array): Buffer => {
  const out = Buffer.allocUnsafe(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  out.set(msg, 2);
  return out;
};

/** Bytes of a TCP DNS stream not yet forming a whole message (at most 2 + 65535). */
export type TcpDnsReader = Buffer;
export const emptyTcpDnsReader: TcpDnsReader = Buffer.alloc(0);

/** Feeds stream bytes; returns the remainder and the whole messages found. */
export const readTcpDns = (
  pending: TcpDnsReader,
  chunk: Uint8Array,
): readonly [TcpDnsReader, readonly Buffer[]] => {
  let buf = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, chunk]);
  const messages: Buffer[] = [];
  while (buf.length >= 2) {
    const len = buf.readUInt16BE(0);
    if (buf.length < 2 + len) break;
    messages.push(buf.subarray(2, 2 + len));
    buf = buf.subarray(2 + len);
  }
  return [buf, messages];
};

// ---------------------------------------------------------------------------
// SERVFAIL: an answer for when nobody can answer (the tunnel is down)
// ---------------------------------------------------------------------------

/**
 * A SERVFAIL answer to `query`: its id, opcode, RD and question, with QR and
 * RA set, so the asker fails at once instead of waiting for its timeout.
 * Null when `query` is shorter than a header.
 */
export const servfailFor = (query: Uint8Array): Buffer | null => {
  if (query.length < HEADER_SIZE) return null;
  const end = questionEnd(query);
  const out = Buffer.from(query.subarray(0, end));
  out[2] = ((out[2] ?? 0) | 0x80) & ~0x02; // QR, not TC
  out[3] = 0x80 | 0x02; // RA, RCODE 2 (SERVFAIL)
  if (end === HEADER_SIZE) out.writeUInt16BE(0, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
};

/**
 * Netlink messages and attributes (RFC 3549, Linux's <linux/netlink.h>): the
 * framing shared by every netlink family, encoded and decoded without a
 * socket. The kernel writes header fields in host byte order, so every codec
 * takes the host's {@link ByteOrder} (the driver passes `os.endianness()`).
 *
 * Message: `len:u32 type:u16 flags:u16 seq:u32 pid:u32`, payload, padding
 * to 4 bytes. Attribute: `len:u16 type:u16`, value, padding to 4 bytes; the
 * top two bits of `type` are flags (nested, network byte order).
 */
import * as E from 'fp-ts/lib/Either.js';

export type ByteOrder = 'LE' | 'BE';

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
/** NLM_F_ROOT | NLM_F_MATCH: "send me all of them". */
export const NLM_F_DUMP = 0x300;

/** Flag bit of an attribute type: the value is itself a list of attributes. */
export const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

export const align4 = (n: number): number => (n + 3) & ~3;

export interface NetlinkMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  /** The bytes after the header, without the trailing padding. */
  readonly payload: Buffer;
}

const u16 = (order: ByteOrder): 'writeUInt16LE' | 'writeUInt16BE' =>
  order === 'LE' ? 'writeUInt16LE' : 'writeUInt16BE';
const u32 = (order: ByteOrder): 'writeUInt32LE' | 'writeUInt32BE' =>
  order === 'LE' ? 'writeUInt32LE' : 'writeUInt32BE';
const r16 = (b: Buffer, at: number, order: ByteOrder): number =>
  order === 'LE' ? b.readUInt16LE(at) : b.readUInt16BE(at);
const r32 = (b: Buffer, at: number, order: ByteOrder): number =>
  order === 'LE' ? b.readUInt32LE(at) : b.readUInt32BE(at);

/** One message, padded to 4 bytes (so messages concatenate into one request). */
export const encodeMessage = (m: NetlinkMessage, order: ByteOrder): Buffer => {
  const len = NLMSG_HDRLEN + m.payload.length;
  const out = Buffer.alloc(align4(len));
  out[u32(order)](len, 0);
  out[u16(order)](m.type, 4);
  out[u16(order)](m.flags, 6);
  out[u32(order)](m.seq >>> 0, 8);
  out[u32(order)](0, 12);
  m.payload.copy(out, NLMSG_HDRLEN);
  return out;
};

/** Every message in `buf` (what recv returned, concatenated); Left on a bad length. */
export const decodeMessages = (
  buf: Buffer,
  order: ByteOrder,
): E.Either<string, NetlinkMessage[]> => {
  const out: NetlinkMessage[] = [];
  let at = 0;
  while (at < buf.length) {
    if (buf.length - at < NLMSG_HDRLEN) return E.left(`netlink: ${buf.length - at} stray bytes`);
    const len = r32(buf, at, order);
    if (len < NLMSG_HDRLEN || len > buf.length - at) {
      return E.left(`netlink: message length ${len} at byte ${at} does not fit`);
    }
    out.push({
      type: r16(buf, at + 4, order),
      flags: r16(buf, at + 6, order),
      seq: r32(buf, at + 8, order),
      payload: buf.subarray(at + NLMSG_HDRLEN, at + len),
    });
    at += Math.min(align4(len), buf.length - at);
  }
  return E.right(out);
};

/** The error code of an NLMSG_ERROR payload: 0 is an ack, else minus an errno. */
export const errorCode = (m: NetlinkMessage, order: ByteOrder): number | null =>
  m.type !== NLMSG_ERROR || m.payload.length < 4
    ? null
    : order === 'LE'
      ? m.payload.readInt32LE(0)
      : m.payload.readInt32BE(0);

// ---------------------------------------------------------------------------
// attributes
// ---------------------------------------------------------------------------

export interface Attribute {
  /** The type without the flag bits. */
  readonly type: number;
  readonly value: Buffer;
}

export const encodeAttribute = (type: number, value: Buffer, order: ByteOrder): Buffer => {
  const len = NLA_HDRLEN + value.length;
  const out = Buffer.alloc(align4(len));
  out[u16(order)](len, 0);
  out[u16(order)](type, 2);
  value.copy(out, NLA_HDRLEN);
  return out;
};

export const encodeNested = (type: number, children: readonly Buffer[], order: ByteOrder): Buffer =>
  encodeAttribute(type | NLA_F_NESTED, Buffer.concat(children), order);

/** The attributes in `buf` in order; Left on a length that does not fit. */
export const decodeAttributes = (buf: Buffer, order: ByteOrder): E.Either<string, Attribute[]> => {
  const out: Attribute[] = [];
  let at = 0;
  while (buf.length - at >= NLA_HDRLEN) {
    const len = r16(buf, at, order);
    if (len < NLA_HDRLEN || len > buf.length - at) {
      return E.left(`netlink: attribute length ${len} at byte ${at} does not fit`);
    }
    out.push({
      type: r16(buf, at + 2, order) & NLA_TYPE_MASK,
      value: buf.subarray(at + NLA_HDRLEN, at + len),
    });
    at = Math.min(at + align4(len), buf.length);
  }
  return E.right(out);
};

/** The first attribute of `type`, if any. */
export const findAttribute = (attrs: readonly Attribute[], type: number): Attribute | undefined =>
  attrs.find((a) => a.type === type);

/**
 * Stale conntrack entries, and the ctnetlink messages that list and drop
 * them (Linux's <linux/netfilter/nfnetlink_conntrack.h>).
 *
 * Why: NAT rules are consulted only for the first packet of a connection.
 * A connection attempt made before our rules were in (an application
 * retrying while the tunnel starts, a probe that timed out) leaves a
 * conntrack entry with no NAT, unreplied, for up to two minutes. A new
 * connection that happens to reuse its source port matches that entry, is
 * never redirected, and hangs in SYN-SENT. Dropping those entries once the
 * rules are in is harmless: the next packet creates a fresh entry, and the
 * rules see it. sshuttle does not do this.
 */
import * as E from 'fp-ts/lib/Either.js';
import ipaddr from 'ipaddr.js';
import type { FirewallRequest } from './firewall-plan.js';
import {
  type Attribute,
  type ByteOrder,
  decodeAttributes,
  decodeMessages,
  encodeAttribute,
  encodeMessage,
  encodeNested,
  errorCode,
  findAttribute,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
} from './netlink.js';
import { AF_INET, AF_INET6, afOf, type Family, isCaptured } from './subnet.js';

// ---------------------------------------------------------------------------
// ctnetlink constants
// ---------------------------------------------------------------------------

/** NETLINK_NETFILTER, the socket protocol. */
export const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_NEW = 0;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const ctType = (msg: number): number => (NFNL_SUBSYS_CTNETLINK << 8) | msg;

const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_STATUS = 3;
const CTA_ID = 12;
const CTA_ZONE = 18;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;

/** Status bits (enum ip_conntrack_status). */
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_DST_NAT = 1 << 5;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

export interface Tuple {
  readonly src: string;
  readonly dst: string;
  readonly sport: number;
  readonly dport: number;
}

export interface ConntrackEntry {
  readonly family: Family;
  readonly proto: number;
  readonly orig: Tuple;
  readonly reply: Tuple;
  readonly status: number;
  readonly id: number | null;
  readonly zone: number | null;
  /** The CTA_TUPLE_ORIG value as the kernel sent it: what a delete names. */
  readonly origTuple: Buffer;
}

// ---------------------------------------------------------------------------
// which entries are stale
// ---------------------------------------------------------------------------

/**
 * Entries our rules would have redirected had they been in when the entry
 * was made: unredirected, unanswered TCP to a captured destination, and
 * unredirected UDP to a captured nameserver's port 53 (answered or not: a
 * resolver reusing its socket would bypass the tunnel while it lives).
 * Established TCP is never touched: it was working, and stays so.
 */
export const isStale = (e: ConntrackEntry, req: FirewallRequest): boolean => {
  if ((e.status & IPS_DST_NAT) !== 0) return false;
  if (e.proto === IPPROTO_TCP) {
    if ((e.status & IPS_SEEN_REPLY) !== 0) return false;
    const port = e.family === 4 ? req.ports.tcp4 : req.ports.tcp6;
    return port !== 0 && isCaptured(req.subnets, e.orig.dst, e.orig.dport);
  }
  if (e.proto === IPPROTO_UDP && e.orig.dport === 53) {
    const port = e.family === 4 ? req.ports.dns4 : req.ports.dns6;
    return (
      port !== 0 &&
      req.nameservers.some((n) => n.family === e.family && sameIp(stripScope(n.ip), e.orig.dst))
    );
  }
  return false;
};

const stripScope = (ip: string): string => ip.split('%')[0] ?? ip;

const sameIp = (a: string, b: string): boolean => {
  try {
    return ipaddr.parse(a).toString() === ipaddr.parse(b).toString();
  } catch {
    return false;
  }
};

// ---------------------------------------------------------------------------
// requests
// ---------------------------------------------------------------------------

/** nfgenmsg: family, version 0, resource id 0. */
const nfgen = (family: Family): Buffer => Buffer.from([afOf(family), 0, 0, 0]);

/** "List every entry of `family`." Answered by entries, then NLMSG_DONE. */
export const dumpRequest = (family: Family, order: ByteOrder): Buffer =>
  encodeMessage(
    {
      type: ctType(IPCTNL_MSG_CT_GET),
      flags: NLM_F_REQUEST | NLM_F_DUMP,
      seq: 1,
      payload: nfgen(family),
    },
    order,
  );

/** One delete per entry, each acked; the id makes sure a reused tuple is spared. */
export const deleteRequest = (entries: readonly ConntrackEntry[], order: ByteOrder): Buffer =>
  Buffer.concat(
    entries.map((e, i) => {
      const attrs = [encodeNested(CTA_TUPLE_ORIG, [e.origTuple], order)];
      if (e.id !== null) {
        const be32 = Buffer.alloc(4);
        be32.writeUInt32BE(e.id >>> 0);
        attrs.push(encodeAttribute(CTA_ID, be32, order));
      }
      if (e.zone !== null) {
        const be16 = Buffer.alloc(2);
        be16.writeUInt16BE(e.zone);
        attrs.push(encodeAttribute(CTA_ZONE, be16, order));
      }
      return encodeMessage(
        {
          type: ctType(IPCTNL_MSG_CT_DELETE),
          flags: NLM_F_REQUEST | NLM_F_ACK,
          seq: i + 1,
          payload: Buffer.concat([nfgen(e.family), ...attrs]),
        },
        order,
      );
    }),
  );

// ---------------------------------------------------------------------------
// replies
// ---------------------------------------------------------------------------

export interface Dump {
  readonly entries: ConntrackEntry[];
  /** Entries that are not TCP/UDP, or that did not decode. */
  readonly skipped: number;
}

/** The entries of a dump reply; Left when the kernel refused or the framing is broken. */
export const decodeDump = (buf: Buffer, order: ByteOrder): E.Either<string, Dump> => {
  const messages = decodeMessages(buf, order);
  if (E.isLeft(messages)) return messages;
  const entries: ConntrackEntry[] = [];
  let skipped = 0;
  for (const m of messages.right) {
    if (m.type === NLMSG_DONE) break;
    if (m.type === NLMSG_ERROR) {
      const code = errorCode(m, order) ?? -1;
      if (code !== 0) return E.left(`conntrack dump refused (errno ${-code})`);
      continue;
    }
    if (m.type !== ctType(IPCTNL_MSG_CT_NEW) || m.payload.length < 4) {
      skipped++;
      continue;
    }
    const entry = decodeEntry(m.payload, order);
    if (entry === null) skipped++;
    else entries.push(entry);
  }
  return E.right({ entries, skipped });
};

const familyOfAf = (af: number): Family | null => (af === AF_INET ? 4 : af === AF_INET6 ? 6 : null);

const decodeEntry = (payload: Buffer, order: ByteOrder): ConntrackEntry | null => {
  const family = familyOfAf(payload[0] ?? 0);
  const attrs = decodeAttributes(payload.subarray(4), order);
  if (family === null || E.isLeft(attrs)) return null;
  const origAttr = findAttribute(attrs.right, CTA_TUPLE_ORIG);
  const replyAttr = findAttribute(attrs.right, CTA_TUPLE_REPLY);
  const status = findAttribute(attrs.right, CTA_STATUS);
  if (origAttr === undefined || replyAttr === undefined || status?.value.length !== 4) return null;
  const orig = decodeTuple(origAttr.value, family, order);
  const reply = decodeTuple(replyAttr.value, family, order);
  if (orig === null || reply === null || orig.proto !== reply.proto) return null;
  const id = findAttribute(attrs.right, CTA_ID);
  const zone = findAttribute(attrs.right, CTA_ZONE);
  return {
    family,
    proto: orig.proto,
    orig: orig.tuple,
    reply: reply.tuple,
    status: status.value.readUInt32BE(0),
    id: id?.value.length === 4 ? id.value.readUInt32BE(0) : null,
    zone: zone?.value.length === 2 ? zone.value.readUInt16BE(0) : null,
    origTuple: origAttr.value,
  };
};

const decodeTuple = (
  value: Buffer,
  family: Family,
  order: ByteOrder,
): { readonly proto: number; readonly tuple: Tuple } | null => {
  const attrs = decodeAttributes(value, order);
  if (E.isLeft(attrs)) return null;
  const ip = nested(findAttribute(attrs.right, CTA_TUPLE_IP), order);
  const proto = nested(findAttribute(attrs.right, CTA_TUPLE_PROTO), order);
  if (ip === null || proto === null) return null;
  const [srcType, dstType, len] =
    family === 4 ? [CTA_IP_V4_SRC, CTA_IP_V4_DST, 4] : [CTA_IP_V6_SRC, CTA_IP_V6_DST, 16];
  const src = findAttribute(ip, srcType)?.value;
  const dst = findAttribute(ip, dstType)?.value;
  const num = findAttribute(proto, CTA_PROTO_NUM)?.value;
  const sport = findAttribute(proto, CTA_PROTO_SRC_PORT)?.value;
  const dport = findAttribute(proto, CTA_PROTO_DST_PORT)?.value;
  if (src?.length !== len || dst?.length !== len || num?.length !== 1) return null;
  // ICMP and others have no ports: not ours to judge.
  if (sport?.length !== 2 || dport?.length !== 2) return null;
  return {
    proto: num[0] ?? 0,
    tuple: {
      src: ipaddr.fromByteArray([...src]).toString(),
      dst: ipaddr.fromByteArray([...dst]).toString(),
      sport: sport.readUInt16BE(0),
      dport: dport.readUInt16BE(0),
    },
  };
};

const nested = (a: Attribute | undefined, order: ByteOrder): Attribute[] | null => {
  if (a === undefined) return null;
  const inner = decodeAttributes(a.value, order);
  return E.isLeft(inner) ? null : inner.right;
};

export interface DeleteOutcome {
  readonly dropped: number;
  /** Gone by themselves meanwhile (ENOENT): nothing to do. */
  readonly gone: number;
  /** errno values of refusals. */
  readonly failed: readonly number[];
}

const ENOENT = 2;

/** Tallies the acks of a {@link deleteRequest}. */
export const decodeDeleteAcks = (
  buf: Buffer,
  order: ByteOrder,
): E.Either<string, DeleteOutcome> => {
  const messages = decodeMessages(buf, order);
  if (E.isLeft(messages)) return messages;
  let dropped = 0;
  let gone = 0;
  const failed: number[] = [];
  for (const m of messages.right) {
    const code = errorCode(m, order);
    if (code === null) continue;
    if (code === 0) dropped++;
    else if (code === -ENOENT) gone++;
    else failed.push(-code);
  }
  return E.right({ dropped, gone, failed });
};

/**
 * Drops the conntrack entries that would keep connections from being
 * redirected now that the NAT rules are in (see src/domain/conntrack.ts for
 * why). Runs in the firewall helper (root), over ctnetlink through the
 * sshuttle_netlink addon; conntrack-tools is not needed. Never fatal: when it
 * cannot, it says why and the tunnel works as sshuttle's does.
 */
import { endianness } from 'node:os';
import * as E from 'fp-ts/lib/Either.js';
import {
  decodeDeleteAcks,
  decodeDump,
  deleteRequest,
  dumpRequest,
  isStale,
  NETLINK_NETFILTER,
} from '../../domain/conntrack.js';
import type { FirewallRequest } from '../../domain/firewall-plan.js';
import type { Family } from '../../domain/subnet.js';
import { addonLoader } from '../addon-loader.js';

interface NetlinkAddon {
  readonly netlinkTalk: (
    protocol: number,
    request: Buffer,
    terminals: number,
    timeoutMs: number,
  ) => Buffer;
}

const netlinkAddon = addonLoader<NetlinkAddon>('sshuttle_netlink');
const TIMEOUT_MS = 2000;
/** Deletes per request: one datagram of acks stays well under the socket buffer. */
const BATCH = 256;

export interface StaleConntrackResult {
  readonly family: Family;
  readonly seen: number;
  readonly stale: number;
  readonly dropped: number;
}

/** Drops `family`'s stale entries; Left says why it could not look. */
export const dropStaleConntrack = (
  req: FirewallRequest,
  family: Family,
): E.Either<string, StaleConntrackResult> => {
  const addon = netlinkAddon();
  if (E.isLeft(addon)) return addon;
  const order = endianness();
  const talk = (request: Buffer, terminals: number): E.Either<string, Buffer> => {
    try {
      return E.right(addon.right.netlinkTalk(NETLINK_NETFILTER, request, terminals, TIMEOUT_MS));
    } catch (e) {
      return E.left((e as Error).message);
    }
  };
  const dumped = talk(dumpRequest(family, order), 1);
  if (E.isLeft(dumped)) return dumped;
  const dump = decodeDump(dumped.right, order);
  if (E.isLeft(dump)) return dump;
  const stale = dump.right.entries.filter((e) => isStale(e, req));
  let dropped = 0;
  for (let i = 0; i < stale.length; i += BATCH) {
    const batch = stale.slice(i, i + BATCH);
    const acks = talk(deleteRequest(batch, order), batch.length);
    if (E.isLeft(acks)) return acks;
    const outcome = decodeDeleteAcks(acks.right, order);
    if (E.isLeft(outcome)) return outcome;
    if (outcome.right.failed.length > 0) {
      return E.left(`the kernel refused to drop an entry (errno ${outcome.right.failed[0]})`);
    }
    dropped += outcome.right.dropped;
  }
  return E.right({ family, seen: dump.right.entries.length, stale: stale.length, dropped });
};

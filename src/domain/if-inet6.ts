/**
 * /proc/net/if_inet6: one line per IPv6 address of this host, as
 * `address(32 hex) ifindex prefixlen scope flags ifname`, all hex.
 * An address still in duplicate address detection is "tentative": the
 * kernel refuses to bind it (EADDRNOTAVAIL) for a second or two after the
 * interface comes up.
 */
import ipaddr from 'ipaddr.js';
import { stripScope } from './firewall-plan.js';

const IFA_F_TENTATIVE = 0x40;

/** The tentative addresses in the file's text, in ipaddr.js's normal form. */
export const tentativeAddresses = (text: string): Set<string> => {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const [hex, , , , flags] = line.trim().split(/\s+/);
    if (hex === undefined || flags === undefined || !/^[0-9a-f]{32}$/i.test(hex)) continue;
    const f = Number.parseInt(flags, 16);
    if (Number.isNaN(f) || (f & IFA_F_TENTATIVE) === 0) continue;
    const groups = hex.match(/.{4}/g) ?? [];
    out.add(ipaddr.IPv6.parse(groups.join(':')).toNormalizedString());
  }
  return out;
};

/** `ip` (with or without `%scope`) in the same normal form, or null if it is not IPv6. */
export const normalIPv6 = (ip: string): string | null => {
  const bare = stripScope(ip);
  return ipaddr.IPv6.isValid(bare) ? ipaddr.IPv6.parse(bare).toNormalizedString() : null;
};

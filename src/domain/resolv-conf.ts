/**
 * Nameservers from resolv.conf text. IPv6 link-local servers may carry a
 * `%iface` scope, which is kept here (the firewall planner strips it, the
 * socket layer needs it); anything that is not an IP literal is skipped.
 */
import ipaddr from 'ipaddr.js';
import type { Family } from './subnet.js';

export interface ResolvNameserver {
  readonly family: Family;
  readonly ip: string;
}

export const parseResolvConf = (text: string): ResolvNameserver[] => {
  const out: ResolvNameserver[] = [];
  for (const raw of text.split('\n')) {
    const words = raw
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/);
    if (words[0] !== 'nameserver' || words[1] === undefined) continue;
    const ip = words[1];
    const bare = ip.replace(/%.*$/, '');
    if (!ipaddr.isValid(bare)) continue;
    const family = ipaddr.parse(bare).kind() === 'ipv6' ? 6 : 4;
    if (family === 4 && !ipaddr.IPv4.isValidFourPartDecimal(bare)) continue;
    if (!out.some((n) => n.ip === ip)) out.push({ family, ip });
  }
  return out;
};

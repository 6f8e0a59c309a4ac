/**
 * This host's IPv6 link-local addresses (getifaddrs, through Node), for
 * scoped link-local nameservers: their queries are DNATed to our address on
 * the same interface (see `Nameserver.via`).
 */
import { networkInterfaces } from 'node:os';
import type { LinkLocal } from '../domain/dns-capture.js';
import { isLinkLocal6, stripScope } from '../domain/firewall-plan.js';

export const readLinkLocals = (): LinkLocal[] =>
  Object.entries(networkInterfaces()).flatMap(([ifname, addrs]) =>
    (addrs ?? []).flatMap((a) =>
      // For a link-local address, scopeid is the interface index.
      a.family === 'IPv6' && a.scopeid !== undefined && isLinkLocal6(a.address)
        ? [{ ifname, index: a.scopeid, ip: stripScope(a.address) }]
        : [],
    ),
  );

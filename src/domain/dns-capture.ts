/**
 * Which nameservers' UDP/53 traffic is captured: with `--dns`, every
 * nameserver in the local resolv.conf files (resolved's upstream list too),
 * plus every `--ns-hosts` entry. IPv6 ones are dropped under --disable-ipv6.
 */
import type { ListenAddr } from './commands.js';
import { isLinkLocal6, type Nameserver, scopeOf, stripScope } from './firewall-plan.js';
import { parseResolvConf, type ResolvNameserver } from './resolv-conf.js';
import { familyOf } from './subnet.js';

/** One IPv6 link-local address of this host, as a driver read it. */
export interface LinkLocal {
  readonly ifname: string;
  readonly index: number;
  /** Without a scope. */
  readonly ip: string;
}

/** Is this a scoped link-local nameserver (one that needs a DNS listener on its interface)? */
export const isScopedLinkLocal = (n: ResolvNameserver): boolean =>
  n.family === 6 && scopeOf(n.ip) !== null && isLinkLocal6(n.ip);

export interface DnsCapture {
  readonly nameservers: readonly ResolvNameserver[];
  readonly warnings: readonly string[];
}

export const dnsCapture = (opts: {
  readonly dns: boolean;
  readonly nsHosts: readonly string[];
  readonly disableIpv6: boolean;
  /** Texts of /etc/resolv.conf and /run/systemd/resolve/resolv.conf (when --dns). */
  readonly resolvConfs: readonly string[];
  /** This host's IPv6 link-local addresses, for scoped link-local nameservers. */
  readonly linkLocals: readonly LinkLocal[];
}): DnsCapture => {
  const fromFiles = opts.dns ? opts.resolvConfs.flatMap(parseResolvConf) : [];
  const listed = opts.nsHosts.map((ip) => ({ family: familyOf(ip.replace(/%.*$/, '')), ip }));
  const all = [...fromFiles, ...listed].filter(
    (n, i, xs) => xs.findIndex((m) => m.ip === n.ip) === i,
  );
  const warnings: string[] = [];
  const nameservers = all.flatMap((n): ResolvNameserver[] => {
    if (n.family === 6 && opts.disableIpv6) {
      warnings.push(`--disable-ipv6: not capturing DNS to ${n.ip}`);
      return [];
    }
    if (!isScopedLinkLocal(n)) return [n];
    // The scope may be a name or an index; the rules match the name.
    const scope = scopeOf(n.ip);
    const ll = opts.linkLocals.find((l) => l.ifname === scope || String(l.index) === scope);
    if (ll === undefined) {
      warnings.push(`not capturing DNS to ${n.ip}: ${scope} has no IPv6 link-local address`);
      return [];
    }
    return [{ family: 6, ip: `${stripScope(n.ip)}%${ll.ifname}` }];
  });
  if (opts.dns && fromFiles.length === 0)
    warnings.push('--dns: no nameserver found in resolv.conf');
  return { nameservers, warnings };
};

/**
 * One DNS listener per family of captured nameservers, on the TCP listen IPs;
 * then one on our link-local address (with its scope) per interface of a
 * scoped link-local nameserver, where that server's queries are DNATed to.
 */
export const dnsListenAddresses = (
  nameservers: readonly ResolvNameserver[],
  tcpListen: readonly ListenAddr[],
  linkLocals: readonly LinkLocal[],
): ListenAddr[] => [
  ...([4, 6] as const)
    .filter((f) => nameservers.some((n) => n.family === f))
    .map((family) => ({
      family,
      ip: tcpListen.find((l) => l.family === family)?.ip ?? (family === 6 ? '::1' : '127.0.0.1'),
      port: 0,
    })),
  ...nameservers
    .filter(isScopedLinkLocal)
    .map((n) => scopeOf(n.ip))
    .filter((scope, i, all) => all.indexOf(scope) === i)
    .flatMap((scope) => {
      const ll = linkLocals.find((l) => l.ifname === scope);
      return ll === undefined ? [] : [{ family: 6 as const, ip: `${ll.ip}%${ll.ifname}`, port: 0 }];
    }),
];

/**
 * The nameservers for the firewall request: each scoped link-local one gets
 * the DNS listener bound on its interface as its DNAT target. Without such a
 * listener (tproxy binds none) it goes as before, scope only.
 */
export const withDnsTargets = (
  nameservers: readonly ResolvNameserver[],
  dnsListeners: readonly ListenAddr[],
): Nameserver[] =>
  nameservers.map((n) => {
    const scope = scopeOf(n.ip);
    const l = isScopedLinkLocal(n)
      ? dnsListeners.find((d) => d.family === 6 && scopeOf(d.ip) === scope)
      : undefined;
    return l === undefined ? n : { ...n, via: { ip: stripScope(l.ip), port: l.port } };
  });

/** Is this DNS listener bound on an interface's link-local address (not a loopback one)? */
export const isScopedListener = (l: ListenAddr): boolean => scopeOf(l.ip) !== null;

/**
 * May a datagram from `src` use the DNS listener on `listenIp`? One on a
 * link-local address is reachable from the whole link, but only our own
 * DNATed queries are meant for it, and those come from one of our addresses.
 */
export const dnsSourceAllowed = (
  listenIp: string,
  src: string,
  /** Asked only for a link-local listener (a driver reads the interfaces). */
  ownIps: () => ReadonlySet<string>,
): boolean => scopeOf(listenIp) === null || ownIps().has(stripScope(src));

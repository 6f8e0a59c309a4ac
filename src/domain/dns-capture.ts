/**
 * Which nameservers' UDP/53 traffic is captured: with `--dns`, every
 * nameserver in the local resolv.conf files (resolved's upstream list too),
 * plus every `--ns-hosts` entry. IPv6 ones are dropped under --disable-ipv6.
 */
import type { ListenAddr } from './commands.js';
import { parseResolvConf, type ResolvNameserver } from './resolv-conf.js';
import { familyOf } from './subnet.js';

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
}): DnsCapture => {
  const fromFiles = opts.dns ? opts.resolvConfs.flatMap(parseResolvConf) : [];
  const listed = opts.nsHosts.map((ip) => ({ family: familyOf(ip.replace(/%.*$/, '')), ip }));
  const all = [...fromFiles, ...listed].filter(
    (n, i, xs) => xs.findIndex((m) => m.ip === n.ip) === i,
  );
  const warnings: string[] = [];
  const nameservers = all.filter((n) => {
    if (n.family === 6 && opts.disableIpv6) {
      warnings.push(`--disable-ipv6: not capturing DNS to ${n.ip}`);
      return false;
    }
    return true;
  });
  if (opts.dns && fromFiles.length === 0)
    warnings.push('--dns: no nameserver found in resolv.conf');
  return { nameservers, warnings };
};

/** One DNS listener per family of captured nameservers, on the TCP listen IPs. */
export const dnsListenAddresses = (
  nameservers: readonly ResolvNameserver[],
  tcpListen: readonly ListenAddr[],
): ListenAddr[] =>
  ([4, 6] as const)
    .filter((f) => nameservers.some((n) => n.family === f))
    .map((family) => ({
      family,
      ip: tcpListen.find((l) => l.family === family)?.ip ?? (family === 6 ? '::1' : '127.0.0.1'),
      port: 0,
    }));

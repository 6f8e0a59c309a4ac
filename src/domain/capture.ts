/**
 * Which rules go into the firewall: the user's rules plus the automatic
 * excludes that keep the tunnel from capturing itself.
 */
import type { ListenAddr, RedirectPorts } from './commands.js';
import { familyOf, maxWidth, type SubnetRule } from './subnet.js';

const hostExclude = (ip: string): SubnetRule => {
  const family = familyOf(ip);
  return { family, ip, width: maxWidth(family), exclude: true, fport: 0, lport: 0 };
};

/**
 * The user's rules, then /32 (/128) excludes for every address of the SSH
 * server (so `0/0` does not capture the tunnel itself) and for the listen
 * addresses, unless the user listed that exact host as an include, as
 * upstream does.
 */
export const captureRules = (
  rules: readonly SubnetRule[],
  serverAddresses: readonly string[],
  listeners: readonly ListenAddr[],
): SubnetRule[] => {
  const includedHosts = new Set(
    rules.filter((r) => !r.exclude && r.width === maxWidth(r.family)).map((r) => r.ip),
  );
  const auto = [...serverAddresses, ...listeners.map((l) => l.ip)]
    .filter((ip, i, all) => all.indexOf(ip) === i)
    .filter((ip) => !includedHosts.has(ip))
    .map(hostExclude);
  return [...rules, ...auto];
};

const portOf = (listeners: readonly ListenAddr[], family: 4 | 6): number =>
  listeners.find((l) => l.family === family)?.port ?? 0;

/** Redirect ports from the bound TCP and DNS listeners. */
export const redirectPorts = (
  listeners: readonly ListenAddr[],
  dnsListeners: readonly ListenAddr[],
): RedirectPorts => {
  const unscoped = dnsListeners.filter((l) => !l.ip.includes('%'));
  return {
    tcp4: portOf(listeners, 4),
    tcp6: portOf(listeners, 6),
    // Link-local listeners are DNAT targets of their own (Nameserver.via), not the family's port.
    dns4: portOf(unscoped, 4),
    dns6: portOf(unscoped, 6),
  };
};

/**
 * The `nft` method (nftables, `inet` family), rule for rule as sshuttle's
 * `methods/nft.py`: one table per family and port, nat hooks at priority
 * -100 jumping to a chain named like the table, an nfproto guard, DNS
 * redirect, the local return, then subnets in first-match order.
 *
 * Differences from upstream, on purpose:
 * - setup first deletes a stale table of the same name (non-fatal, only if it
 *   is listed), so a crashed run's table does not collect duplicate jumps;
 * - a scoped link-local nameserver (`fe80::53%eth0`) is DNATed to our own
 *   link-local address on that interface instead of redirected to ::1, which
 *   a resolver socket bound to the interface never receives (upstream #736);
 * - `user`/`group` are honoured (upstream ignores them) by matching
 *   `meta skuid`/`meta skgid` on the output jump; forwarded packets have no
 *   owner, so the prerouting jump is left out, as nat's mark never matches there.
 * Each word is its own argv element; a braced group (chain spec, port set)
 * is one element. nft joins argv before parsing, so both forms are the same.
 */
import type { FamilyPlanInput, Step } from './firewall-plan.js';

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

export const nftTable = (family: 4 | 6, port: number): string => `sshuttle-ipv${family}-${port}`;

const hook = (name: 'prerouting' | 'output'): string =>
  `{ type nat hook ${name} priority -100; policy accept; }`;

// ---------------------------------------------------------------------------
// planners
// ---------------------------------------------------------------------------

/** Delete our table (non-fatal), only when `nft list tables` shows it. */
export const planNftRestore = (input: FamilyPlanInput): Step[] => {
  const table = nftTable(input.family, input.port);
  return [
    {
      argv: ['nft', 'delete', 'table', 'inet', table],
      fatal: false,
      when: { argv: ['nft', 'list', 'tables'], line: `table inet ${table}`, match: 'exact' },
    },
  ];
};

export const planNftSetup = (input: FamilyPlanInput): Step[] => {
  const table = nftTable(input.family, input.port);
  const chain = table;
  const nfproto = input.family === 6 ? 'ipv6' : 'ipv4';
  const ipkw = input.family === 6 ? 'ip6' : 'ip';
  const step = (...words: string[]): Step => ({ argv: ['nft', ...words], fatal: true });
  const rule = (...words: string[]): Step => step('add', 'rule', 'inet', table, chain, ...words);
  const owner = [
    ...(input.user !== null ? ['meta', 'skuid', String(input.user)] : []),
    ...(input.group !== null ? ['meta', 'skgid', String(input.group)] : []),
  ];
  const subnetSteps = input.subnets.map((r) => {
    const ports =
      r.fport === 0
        ? ['meta', 'nfproto', nfproto, 'meta', 'l4proto', 'tcp']
        : r.fport === r.lport
          ? ['meta', 'nfproto', nfproto, 'tcp', 'dport', String(r.fport)]
          : ['meta', 'nfproto', nfproto, 'tcp', 'dport', `{ ${r.fport}-${r.lport} }`];
    const dest = [ipkw, 'daddr', `${r.ip}/${r.width}`];
    return r.exclude
      ? rule(...ports, ...dest, 'return')
      : rule(...ports, ...dest, 'redirect', 'to', `:${input.port}`);
  });
  return [
    ...planNftRestore(input),
    step('add', 'table', 'inet', table),
    step('add', 'chain', 'inet', table, 'prerouting', hook('prerouting')),
    step('add', 'chain', 'inet', table, 'output', hook('output')),
    step('add', 'chain', 'inet', table, chain),
    step('flush', 'chain', 'inet', table, chain),
    step('add', 'rule', 'inet', table, 'output', ...owner, 'jump', chain),
    ...(owner.length === 0
      ? [step('add', 'rule', 'inet', table, 'prerouting', 'jump', chain)]
      : []),
    // The chain sees both families (inet); handle only ours.
    rule('meta', 'nfproto', '!=', nfproto, 'return'),
    ...input.nameservers.map((ns) =>
      rule(ipkw, 'daddr', ns, 'udp', 'dport', '53', 'redirect', 'to', `:${input.dnsport}`),
    ),
    // A scoped link-local server is one per interface: match that output
    // interface, and DNAT to our address on it (see Nameserver.via).
    ...input.scopedNameservers.map((ns) =>
      rule(
        ipkw,
        'daddr',
        ns.ip,
        'oifname',
        `"${ns.iface}"`,
        'udp',
        'dport',
        '53',
        'dnat',
        ipkw,
        'to',
        `[${ns.via.ip}]:${ns.via.port}`,
      ),
    ),
    rule('fib', 'daddr', 'type', 'local', 'return'),
    ...subnetSteps,
  ];
};

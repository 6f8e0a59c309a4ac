/**
 * The `nft-tproxy` method: the tproxy capture of `firewall-plan-tproxy.ts`
 * written for nftables (upstream request #323), for machines that have `nft`
 * and no iptables. One `inet` table per family and port,
 * `sshuttle-tproxy-ipv<f>-<port>`, holding:
 * - `output` (type route, hook output, priority mangle) jumping to
 *   `route_to_lo` (`mark` is a keyword of nft's grammar):
 *   marks locally generated packets for the subnets and nameservers, so the
 *   policy routing sends them to `lo` (a `route` chain re-routes after a mark
 *   changes, as iptables' mangle OUTPUT does);
 * - `prerouting` (type filter, hook prerouting, priority mangle) jumping to
 *   `divert`: packets of existing transparent TCP sockets are marked and
 *   accepted, others for the subnets go to our listener with `tproxy`.
 * Rule order as the iptables plan: a family guard, DNS first, the local
 * return, (prerouting only) the TCP socket divert, then the subnets in
 * first-match order, TCP and (with UDP) UDP for each. Excludes `return`; a
 * mark ends its chain too (`return`), so first match wins exactly.
 *
 * The policy routing (`ip rule` fwmark, local route in table 100) is the
 * iptables plan's, shared. Restore deletes the table (only if listed) and
 * that routing. {@link planNftTproxyPreflight} tries the `socket` and
 * `tproxy` expressions in a scratch table first, so a kernel without them is
 * named instead of failing half-way.
 */
import type { FamilyPlanInput, Probe, Step } from './firewall-plan.js';
import {
  type FeatureCheck,
  planTproxyRoutingRestore,
  planTproxyRoutingSetup,
  type TproxyOptions,
} from './firewall-plan-tproxy.js';

export const nftTproxyTable = (family: 4 | 6, port: number): string =>
  `sshuttle-tproxy-ipv${family}-${port}`;

const tableListed = (table: string): Probe => ({
  argv: ['nft', 'list', 'tables'],
  line: `table inet ${table}`,
  match: 'exact',
});

/** A base chain: `kind` and `hook` at priority mangle. */
const hookedChain = (
  table: string,
  name: string,
  kind: 'route' | 'filter',
  hook: string,
): Step => ({
  argv: [
    'nft',
    'add',
    'chain',
    'inet',
    table,
    name,
    `{ type ${kind} hook ${hook} priority mangle; policy accept; }`,
  ],
  fatal: true,
});

const deleteTable = (table: string): Step => ({
  argv: ['nft', 'delete', 'table', 'inet', table],
  fatal: true,
  when: tableListed(table),
});

export const planNftTproxyRestore = (input: FamilyPlanInput, o: TproxyOptions): Step[] => [
  deleteTable(nftTproxyTable(input.family, input.port)),
  ...planTproxyRoutingRestore(input, o),
];

export const planNftTproxySetup = (input: FamilyPlanInput, o: TproxyOptions): Step[] => {
  const table = nftTproxyTable(input.family, input.port);
  const nfproto = input.family === 6 ? 'ipv6' : 'ipv4';
  const ipkw = input.family === 6 ? 'ip6' : 'ip';
  const step = (...words: string[]): Step => ({ argv: ['nft', ...words], fatal: true });
  const rule = (chain: 'route_to_lo' | 'divert', ...words: string[]): Step =>
    step('add', 'rule', 'inet', table, chain, ...words);
  const setMark = ['meta', 'mark', 'set', o.tmark];
  /** Mark what `match` selects in `route_to_lo`; hand it to `port` in `divert`. */
  const capture = (match: string[], port: number): Step[] => [
    rule('route_to_lo', ...match, ...setMark, 'return'),
    rule('divert', ...match, 'tproxy', ipkw, 'to', `:${port}`, ...setMark, 'accept'),
  ];
  const protoPorts = (proto: 'tcp' | 'udp', fport: number, lport: number): string[] =>
    fport === 0
      ? ['meta', 'l4proto', proto]
      : [proto, 'dport', fport === lport ? String(fport) : `${fport}-${lport}`];
  const subnetSteps = input.subnets.flatMap((r) =>
    (o.udp ? (['tcp', 'udp'] as const) : (['tcp'] as const)).flatMap((proto) => {
      const match = [ipkw, 'daddr', `${r.ip}/${r.width}`, ...protoPorts(proto, r.fport, r.lport)];
      return r.exclude
        ? [rule('route_to_lo', ...match, 'return'), rule('divert', ...match, 'return')]
        : capture(match, input.port);
    }),
  );
  const hostWidth = input.family === 6 ? 128 : 32;
  return [
    ...planNftTproxyRestore(input, o),
    step('add', 'table', 'inet', table),
    hookedChain(table, 'output', 'route', 'output'),
    hookedChain(table, 'prerouting', 'filter', 'prerouting'),
    step('add', 'chain', 'inet', table, 'route_to_lo'),
    step('add', 'chain', 'inet', table, 'divert'),
    step('add', 'rule', 'inet', table, 'output', 'jump', 'route_to_lo'),
    step('add', 'rule', 'inet', table, 'prerouting', 'jump', 'divert'),
    // The chains see both families (inet); handle only ours.
    rule('route_to_lo', 'meta', 'nfproto', '!=', nfproto, 'return'),
    rule('divert', 'meta', 'nfproto', '!=', nfproto, 'return'),
    ...input.nameservers.flatMap((ns) =>
      capture([ipkw, 'daddr', `${ns}/${hostWidth}`, 'udp', 'dport', '53'], input.dnsport),
    ),
    rule('route_to_lo', 'fib', 'daddr', 'type', 'local', 'return'),
    rule('divert', 'fib', 'daddr', 'type', 'local', 'return'),
    // Packets of TCP sockets that already exist (accepted connections) go to them.
    rule('divert', 'meta', 'l4proto', 'tcp', 'socket', 'transparent', '1', ...setMark, 'accept'),
    // No UDP socket divert, as in the iptables plan (see there why).
    ...subnetSteps,
    ...planTproxyRoutingSetup(input, o),
  ];
};

/**
 * The nftables features the rules need, tried in a scratch table
 * `sshuttle-probe-<id>`: run `checks` in order (the first failure names what
 * is missing), then always `cleanup`.
 */
export const planNftTproxyPreflight = (
  family: 4 | 6,
  id: number,
): { readonly checks: FeatureCheck[]; readonly cleanup: Step[] } => {
  const table = `sshuttle-probe-${id}`;
  const ipkw = family === 6 ? 'ip6' : 'ip';
  const v = family === 6 ? 'IPv6' : 'IPv4';
  const step = (...words: string[]): Step => ({ argv: ['nft', ...words], fatal: true });
  const probeRule = (...words: string[]): Step =>
    step('add', 'rule', 'inet', table, 'p', 'meta', 'l4proto', 'tcp', ...words);
  return {
    checks: [
      {
        step: step('add', 'table', 'inet', table),
        missing: 'nftables is not usable (nft add table inet; kernel module nf_tables)',
      },
      {
        step: hookedChain(table, 'p', 'filter', 'prerouting'),
        missing: 'nftables has no prerouting filter hook here (kernel module nf_tables)',
      },
      {
        step: probeRule('socket', 'transparent', '1', 'accept'),
        missing: `the kernel has no nftables "socket" expression (CONFIG_NFT_SOCKET: modprobe nft_socket)`,
      },
      {
        step: probeRule('tproxy', ipkw, 'to', ':1'),
        missing: `the kernel has no ${v} nftables "tproxy" expression (CONFIG_NFT_TPROXY: modprobe nft_tproxy)`,
      },
    ],
    cleanup: [{ ...deleteTable(table), fatal: false }],
  };
};

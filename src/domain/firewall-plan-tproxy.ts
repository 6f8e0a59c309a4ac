/**
 * The `tproxy` method (iptables/ip6tables, table `mangle`), rule for rule as
 * sshuttle's `methods/tproxy.py` (sshuttle-upstream.md §2.3): chains
 * `sshuttle-m-<port>` (OUTPUT: marks locally generated packets so that they
 * are routed to `lo`), `sshuttle-t-<port>` (PREROUTING: the TPROXY target)
 * and `sshuttle-d-<port>` (divert: packets of sockets that already exist),
 * DNS first, the LOCAL returns, the socket divert, then the subnets in
 * first-match order, TCP and (with UDP) UDP for each.
 *
 * Beyond upstream (which tells the user to do it by hand):
 * - the policy routing marked packets need is installed and removed here:
 *   `ip rule add fwmark <tmark> lookup 100 priority P` and
 *   `ip route add local default dev lo table 100 metric P`, for IPv4 and
 *   IPv6. P is derived from the redirector port, so the rule and the route
 *   are ours alone: a hand-made `lookup 100` setup or another instance on
 *   another port is never touched, and teardown deletes exactly what setup
 *   added (a delete names the priority/metric);
 * - no `-m socket -j <divert> -m udp -p udp` rule: every reply to a local
 *   application is sent from a throw-away socket bound to the remote address,
 *   and while it exists the socket match sends the application's next
 *   datagrams to that address into it instead of to our listener, where they
 *   are lost (measured in the lab: 8-13% of 10,000 echo datagrams with the
 *   rule, none without). TCP keeps its divert rule;
 * - IPv6 nameservers get `/128` (upstream writes `/32` for both families,
 *   which captures port 53 of a whole /32 of IPv6 space);
 * - {@link planTproxyPreflight}: the kernel features the rules need (the
 *   `socket` match, the `TPROXY` target) are tried in a scratch chain first,
 *   so a missing one is named instead of failing half-way through setup.
 */
import type { FamilyPlanInput, Probe, Step } from './firewall-plan.js';

// ---------------------------------------------------------------------------
// names
// ---------------------------------------------------------------------------

export const tproxyChains = (port: number) =>
  ({
    mark: `sshuttle-m-${port}`,
    tproxy: `sshuttle-t-${port}`,
    divert: `sshuttle-d-${port}`,
  }) as const;

/** The routing table marked packets are looked up in (as upstream's docs). */
export const TPROXY_TABLE = '100';

/**
 * Priority of our `ip rule` and metric of our local route: the port when it
 * is a usable rule priority (it must come before `main`, 32766), else a
 * number derived from it in 1000..30999.
 */
export const tproxyPriority = (port: number): number =>
  port >= 1000 && port < 32766 ? port : 1000 + (port % 30000);

/** The options of the request the tproxy rules depend on. */
export interface TproxyOptions {
  readonly tmark: string;
  readonly udp: boolean;
}

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const ipt = (family: 4 | 6): string[] => [
  family === 6 ? 'ip6tables' : 'iptables',
  '-w',
  '-t',
  'mangle',
];

const ipCmd = (family: 4 | 6): string[] => ['ip', family === 6 ? '-6' : '-4'];

const chainExists = (family: 4 | 6, chain: string): Probe => ({
  argv: [...ipt(family), '-nL'],
  line: `Chain ${chain} `,
  match: 'prefix',
});

const ruleSpec = (input: FamilyPlanInput, o: TproxyOptions): string[] => [
  'fwmark',
  o.tmark,
  'lookup',
  TPROXY_TABLE,
  'priority',
  String(tproxyPriority(input.port)),
];

const routeSpec = (input: FamilyPlanInput): string[] => [
  'local',
  'default',
  'dev',
  'lo',
  'table',
  TPROXY_TABLE,
  'metric',
  String(tproxyPriority(input.port)),
];

/** Our rule is listed (the listing is filtered to exactly its selector). */
const ruleExists = (input: FamilyPlanInput, o: TproxyOptions): Probe => ({
  argv: [...ipCmd(input.family), 'rule', 'list', ...ruleSpec(input, o).slice(0, 4)],
  line: `${tproxyPriority(input.port)}:`,
  match: 'prefix',
});

/**
 * Our route is listed (filtered to its metric). `table all`, because
 * `ip -6 route show table 100` fails while that table does not exist yet.
 */
const routeExists = (input: FamilyPlanInput): Probe => ({
  argv: [
    ...ipCmd(input.family),
    'route',
    'show',
    'table',
    'all',
    'metric',
    String(tproxyPriority(input.port)),
  ],
  line: `local default dev lo table ${TPROXY_TABLE}`,
  match: 'prefix',
});

// ---------------------------------------------------------------------------
// planners
// ---------------------------------------------------------------------------

/** The policy routing steps that undo {@link planTproxyRoutingSetup}, each only if present. */
export const planTproxyRoutingRestore = (input: FamilyPlanInput, o: TproxyOptions): Step[] => [
  {
    argv: [...ipCmd(input.family), 'rule', 'del', ...ruleSpec(input, o)],
    fatal: true,
    when: ruleExists(input, o),
  },
  {
    argv: [...ipCmd(input.family), 'route', 'del', ...routeSpec(input)],
    fatal: true,
    when: routeExists(input),
  },
];

/** The policy routing marked packets need (shared with the nft-tproxy plan). */
export const planTproxyRoutingSetup = (input: FamilyPlanInput, o: TproxyOptions): Step[] => [
  { argv: [...ipCmd(input.family), 'route', 'add', ...routeSpec(input)], fatal: true },
  { argv: [...ipCmd(input.family), 'rule', 'add', ...ruleSpec(input, o)], fatal: true },
];

/** Upstream's restore (each chain only if it exists), then our policy routing. */
export const planTproxyRestore = (input: FamilyPlanInput, o: TproxyOptions): Step[] => {
  const t = ipt(input.family);
  const { mark, tproxy, divert } = tproxyChains(input.port);
  const m = chainExists(input.family, mark);
  const tp = chainExists(input.family, tproxy);
  const d = chainExists(input.family, divert);
  return [
    { argv: [...t, '-D', 'OUTPUT', '-j', mark], fatal: false, when: m },
    { argv: [...t, '-F', mark], fatal: false, when: m },
    { argv: [...t, '-X', mark], fatal: true, when: m },
    { argv: [...t, '-D', 'PREROUTING', '-j', tproxy], fatal: false, when: tp },
    { argv: [...t, '-F', tproxy], fatal: false, when: tp },
    { argv: [...t, '-X', tproxy], fatal: true, when: tp },
    { argv: [...t, '-F', divert], fatal: false, when: d },
    { argv: [...t, '-X', divert], fatal: true, when: d },
    ...planTproxyRoutingRestore(input, o),
  ];
};

/** Restore first (stale chains of a crashed run), then build the chains and the routing. */
export const planTproxySetup = (input: FamilyPlanInput, o: TproxyOptions): Step[] => {
  const t = ipt(input.family);
  const { mark, tproxy, divert } = tproxyChains(input.port);
  const add = (chain: string, ...args: string[]): Step => ({
    argv: [...t, '-A', chain, ...args],
    fatal: true,
  });
  /** Mark locally generated packets matching `match`, and send arriving ones to `port`. */
  const capture = (match: string[], port: number): Step[] => [
    add(mark, '-j', 'MARK', '--set-mark', o.tmark, ...match),
    add(tproxy, '-j', 'TPROXY', '--tproxy-mark', o.tmark, ...match, '--on-port', String(port)),
  ];
  const hostWidth = input.family === 6 ? 128 : 32;
  const protoPorts = (proto: 'tcp' | 'udp', fport: number, lport: number): string[] =>
    fport !== 0 ? ['-p', proto, '--dport', `${fport}:${lport}`] : ['-p', proto];
  const subnetSteps = input.subnets.flatMap((r) =>
    (o.udp ? (['tcp', 'udp'] as const) : (['tcp'] as const)).flatMap((proto) => {
      const dest = ['--dest', `${r.ip}/${r.width}`];
      const ports = protoPorts(proto, r.fport, r.lport);
      return r.exclude
        ? [
            add(mark, '-j', 'RETURN', ...dest, '-m', proto, ...ports),
            add(tproxy, '-j', 'RETURN', ...dest, '-m', proto, ...ports),
          ]
        : capture([...dest, '-m', proto, ...ports], input.port);
    }),
  );
  return [
    ...planTproxyRestore(input, o),
    { argv: [...t, '-N', mark], fatal: true },
    { argv: [...t, '-F', mark], fatal: true },
    { argv: [...t, '-N', divert], fatal: true },
    { argv: [...t, '-F', divert], fatal: true },
    { argv: [...t, '-N', tproxy], fatal: true },
    { argv: [...t, '-F', tproxy], fatal: true },
    { argv: [...t, '-I', 'OUTPUT', '1', '-j', mark], fatal: true },
    { argv: [...t, '-I', 'PREROUTING', '1', '-j', tproxy], fatal: true },
    ...input.nameservers.flatMap((ns) => {
      const dest = ['--dest', `${ns}/${hostWidth}`, '-m', 'udp', '-p', 'udp', '--dport', '53'];
      return capture(dest, input.dnsport);
    }),
    add(tproxy, '-j', 'RETURN', '-m', 'addrtype', '--dst-type', 'LOCAL'),
    add(mark, '-j', 'RETURN', '-m', 'addrtype', '--dst-type', 'LOCAL'),
    add(divert, '-j', 'MARK', '--set-mark', o.tmark),
    add(divert, '-j', 'ACCEPT'),
    add(tproxy, '-m', 'socket', '-j', divert, '-m', 'tcp', '-p', 'tcp'),
    // No UDP socket divert (upstream has one): see the module comment.
    ...subnetSteps,
    ...planTproxyRoutingSetup(input, o),
  ];
};

// ---------------------------------------------------------------------------
// preflight
// ---------------------------------------------------------------------------

/** One feature check: the step that needs the feature, and what to say when it fails. */
export interface FeatureCheck {
  readonly step: Step;
  readonly missing: string;
}

/**
 * The kernel features tproxy needs, tried in a scratch mangle chain named
 * `sshuttle-probe-<id>`: run `checks` in order (the first failure names
 * what is missing), then always `cleanup`.
 */
export const planTproxyPreflight = (
  family: 4 | 6,
  id: number,
): { readonly checks: FeatureCheck[]; readonly cleanup: Step[] } => {
  const t = ipt(family);
  const chain = `sshuttle-probe-${id}`;
  const v = family === 6 ? 'IPv6' : 'IPv4';
  const mod = family === 6 ? 'ip6table_mangle' : 'iptable_mangle';
  const step = (...args: string[]): Step => ({ argv: [...t, ...args], fatal: true });
  return {
    checks: [
      {
        step: step('-N', chain),
        missing: `the ${v} mangle table is not usable (${t[0]} -t mangle; kernel module ${mod} or nf_tables)`,
      },
      {
        step: step('-A', chain, '-m', 'socket', '-j', 'RETURN'),
        missing: `the kernel has no ${v} "socket" match (CONFIG_NETFILTER_XT_MATCH_SOCKET: modprobe xt_socket${family === 6 ? ' nf_socket_ipv6' : ' nf_socket_ipv4'})`,
      },
      {
        step: step(
          '-A',
          chain,
          '-p',
          'tcp',
          '-j',
          'TPROXY',
          '--on-port',
          '1',
          '--tproxy-mark',
          '0x1',
        ),
        missing: `the kernel has no ${v} TPROXY target (CONFIG_NETFILTER_XT_TARGET_TPROXY: modprobe xt_TPROXY${family === 6 ? ' nf_tproxy_ipv6' : ' nf_tproxy_ipv4'})`,
      },
    ],
    cleanup: [
      {
        argv: [...t, '-F', chain],
        fatal: false,
        when: chainExists(family, chain),
      },
      { argv: [...t, '-X', chain], fatal: false, when: chainExists(family, chain) },
    ],
  };
};

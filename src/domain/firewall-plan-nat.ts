/**
 * The `nat` method (iptables/ip6tables, table `nat`), rule for rule as
 * sshuttle 1.1.2+ `methods/nat.py`: chain `sshuttle-<port>`, jumps from
 * OUTPUT and PREROUTING at position 1, DNS redirect, subnets in first-match
 * order, the LOCAL return last, and owner marks in `mangle` for user/group.
 */
import type { FamilyPlanInput, Probe, Step } from './firewall-plan.js';

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/** `iptables -w -t <table>` for the input's family (`-w` waits for the xtables lock). */
const ipt = (input: FamilyPlanInput, table: 'nat' | 'mangle'): string[] => [
  input.family === 6 ? 'ip6tables' : 'iptables',
  '-w',
  '-t',
  table,
];

export const natChain = (port: number): string => `sshuttle-${port}`;

/** `-m owner [--uid-owner U] [--gid-owner G] -j MARK --set-mark <port>`, or null. */
const ownerMark = (input: FamilyPlanInput): string[] | null => {
  if (input.user === null && input.group === null) return null;
  return [
    '-m',
    'owner',
    ...(input.user !== null ? ['--uid-owner', String(input.user)] : []),
    ...(input.group !== null ? ['--gid-owner', String(input.group)] : []),
    '-j',
    'MARK',
    '--set-mark',
    String(input.port),
  ];
};

/** What OUTPUT/PREROUTING jump with: only marked packets when user/group is set. */
const jump = (input: FamilyPlanInput): string[] =>
  ownerMark(input) === null
    ? ['-j', natChain(input.port)]
    : ['-m', 'mark', '--mark', String(input.port), '-j', natChain(input.port)];

const chainExists = (input: FamilyPlanInput): Probe => ({
  argv: [...ipt(input, 'nat'), '-nL'],
  line: `Chain ${natChain(input.port)} `,
  match: 'prefix',
});

// ---------------------------------------------------------------------------
// planners
// ---------------------------------------------------------------------------

/** Remove our chain and its jumps, only if the chain exists (`-X` is fatal). */
export const planNatRestore = (input: FamilyPlanInput): Step[] => {
  const when = chainExists(input);
  const nat = ipt(input, 'nat');
  const chain = natChain(input.port);
  const mark = ownerMark(input);
  return [
    ...(mark === null
      ? []
      : [{ argv: [...ipt(input, 'mangle'), '-D', 'OUTPUT', ...mark], fatal: false, when }]),
    { argv: [...nat, '-D', 'OUTPUT', ...jump(input)], fatal: false, when },
    { argv: [...nat, '-D', 'PREROUTING', ...jump(input)], fatal: false, when },
    { argv: [...nat, '-F', chain], fatal: false, when },
    { argv: [...nat, '-X', chain], fatal: true, when },
  ];
};

/** Restore first (stale chain of a crashed run), then build the chain. */
export const planNatSetup = (input: FamilyPlanInput): Step[] => {
  const nat = ipt(input, 'nat');
  const chain = natChain(input.port);
  const mark = ownerMark(input);
  const add = (...args: string[]): Step => ({ argv: [...nat, '-A', chain, ...args], fatal: true });
  const subnetSteps = input.subnets.map((r) => {
    const ports = r.fport !== 0 ? ['-p', 'tcp', '--dport', `${r.fport}:${r.lport}`] : ['-p', 'tcp'];
    const dest = ['--dest', `${r.ip}/${r.width}`];
    return r.exclude
      ? add('-j', 'RETURN', ...dest, ...ports)
      : add('-j', 'REDIRECT', ...dest, ...ports, '--to-ports', String(input.port));
  });
  return [
    ...planNatRestore(input),
    { argv: [...nat, '-N', chain], fatal: true },
    { argv: [...nat, '-F', chain], fatal: true },
    ...(mark === null
      ? []
      : [{ argv: [...ipt(input, 'mangle'), '-I', 'OUTPUT', '1', ...mark], fatal: false }]),
    { argv: [...nat, '-I', 'OUTPUT', '1', ...jump(input)], fatal: true },
    { argv: [...nat, '-I', 'PREROUTING', '1', ...jump(input)], fatal: true },
    // DNS before the LOCAL return, so a local resolver (127.0.0.53) is captured too.
    ...input.nameservers.map((ns) =>
      add(
        '-j',
        'REDIRECT',
        '--dest',
        ns,
        '-p',
        'udp',
        '--dport',
        '53',
        '--to-ports',
        String(input.dnsport),
      ),
    ),
    // Scoped link-local servers: per output interface, DNAT to our address there (see Nameserver.via).
    ...input.scopedNameservers.map((ns) =>
      add(
        '-j',
        'DNAT',
        '--dest',
        ns.ip,
        '-o',
        ns.iface,
        '-p',
        'udp',
        '--dport',
        '53',
        '--to-destination',
        `[${ns.via.ip}]:${ns.via.port}`,
      ),
    ),
    ...subnetSteps,
    // Last since 1.1.2, so explicitly listed local addresses can be tunnelled.
    add('-j', 'RETURN', '-m', 'addrtype', '--dst-type', 'LOCAL'),
  ];
};

/**
 * What of ours is in a namespace's firewall: anything sshuttle-named in
 * nftables (our nft method's tables `sshuttle-ipv4-PORT` / `sshuttle-ipv6-PORT`)
 * and in iptables/ip6tables (chains `sshuttle-PORT`, `sshuttle-m-PORT`, ... and
 * the jumps to them). Zero means the firewall is as we found it.
 */
import { inNs } from './lab-exec.js';

/**
 * Lines of `nft list ruleset` that belong to tables whose name mentions
 * sshuttle: the table line itself and every chain, hook and rule line in it.
 * Tables managed by iptables-nft are left to {@link iptablesObjects}, so one
 * iptables rule is not counted twice.
 */
export const nftObjects = (ruleset: string): string[] => {
  const out: string[] = [];
  let inOurs = false;
  let depth = 0;
  for (const raw of ruleset.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (depth === 0 && line.startsWith('table ')) {
      inOurs = /sshuttle/.test(line);
      if (inOurs) out.push(line);
    } else if (inOurs && line !== '}') {
      out.push(line);
    }
    depth += (line.match(/\{/g)?.length ?? 0) - (line.match(/\}/g)?.length ?? 0);
  }
  return out;
};

/** `-A` rules and `:chain` declarations mentioning sshuttle in iptables-save output. */
export const iptablesObjects = (save: string): string[] =>
  save.split('\n').filter((l) => (l.startsWith('-A ') || l.startsWith(':')) && /sshuttle/.test(l));

const listing = async (ns: string, argv: readonly string[]): Promise<string> => {
  const r = await inNs(ns, argv, { timeoutMs: 15_000 });
  if (r.code !== 0) {
    throw new Error(`${argv.join(' ')} in ${ns} failed (${r.code}): ${r.stderr.trim()}`);
  }
  return r.stdout;
};

/** Every firewall object of ours in `ns`, as the lines that show it (for messages). */
export const ourFirewallObjects = async (ns: string): Promise<string[]> => {
  const [nft, v4, v6] = await Promise.all([
    listing(ns, ['nft', 'list', 'ruleset']),
    listing(ns, ['iptables-save']),
    listing(ns, ['ip6tables-save']),
  ]);
  return [
    ...nftObjects(nft).map((l) => `nft: ${l}`),
    ...iptablesObjects(v4).map((l) => `iptables: ${l}`),
    ...iptablesObjects(v6).map((l) => `ip6tables: ${l}`),
  ];
};

/** How many firewall objects (tables, chains, rules) of ours are in `ns`; 0 is clean. */
export const countOurRules = async (ns: string): Promise<number> =>
  (await ourFirewallObjects(ns)).length;

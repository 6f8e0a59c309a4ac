/**
 * Which firewall method the helper uses: the one asked for if its programs
 * are there and work, or for `auto` nft (when `nft` runs), else nat (when
 * `iptables` runs), else a clear error.
 */
import * as E from 'fp-ts/lib/Either.js';
import type { Method } from '../../domain/config.js';
import type { FirewallMethod } from '../../domain/firewall-plan.js';
import { type FirewallEnv, failure, runCommand, which } from './run-steps.js';

/** The command that proves a method's tool is present and usable here. */
const PROBES: Record<FirewallMethod, readonly string[]> = {
  nft: ['nft', 'list', 'tables'],
  nat: ['iptables', '-w', '-t', 'nat', '-nL'],
  tproxy: ['iptables', '-w', '-t', 'mangle', '-nL'],
  'nft-tproxy': ['nft', 'list', 'tables'],
};

/** Programs a method needs besides its probe's (tproxy: both iptables and the routing). */
const ALSO_NEEDS: Record<FirewallMethod, readonly string[]> = {
  nft: [],
  nat: [],
  tproxy: ['ip6tables', 'ip'],
  'nft-tproxy': ['ip'],
};

/** Why `method` cannot be used on this machine, or null when it can. */
export const methodProblem = async (
  method: FirewallMethod,
  env: FirewallEnv,
): Promise<string | null> => {
  const argv = PROBES[method];
  const tool = argv[0] ?? '';
  for (const t of [tool, ...ALSO_NEEDS[method]]) {
    if (which(t, env) === null)
      return `the ${method} method needs '${t}', which is not on PATH (${env.PATH})`;
  }
  const why = failure(argv, await runCommand(argv, env));
  return why === null ? null : `the ${method} method does not work here: ${why}`;
};

export const selectMethod = async (
  requested: Method,
  env: FirewallEnv,
): Promise<E.Either<string, FirewallMethod>> => {
  if (
    requested === 'nft' ||
    requested === 'nat' ||
    requested === 'tproxy' ||
    requested === 'nft-tproxy'
  ) {
    const why = await methodProblem(requested, env);
    if (why === null) return E.right(requested);
    // tproxy without iptables on an nftables machine: say what would work.
    if (requested === 'tproxy' && (await methodProblem('nft-tproxy', env)) === null)
      return E.left(`${why} (nft is here: --method nft-tproxy does the same with nftables)`);
    return E.left(why);
  }
  if (requested !== 'auto')
    return E.left(`the ${requested} method is not supported by this firewall helper (yet)`);
  const reasons: string[] = [];
  for (const m of ['nft', 'nat'] as const) {
    const why = await methodProblem(m, env);
    if (why === null) return E.right(m);
    reasons.push(why);
  }
  return E.left(`no usable firewall method: ${reasons.join('; ')}`);
};

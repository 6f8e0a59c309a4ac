/**
 * Before the tproxy rules go in: try the kernel features they need in a
 * scratch chain, and say which one is missing (upstream fails half-way with
 * `Couldn't load match socket`, #1047).
 */
import * as E from 'fp-ts/lib/Either.js';
import { planNftTproxyPreflight } from '../../domain/firewall-plan-nft-tproxy.js';
import { planTproxyPreflight } from '../../domain/firewall-plan-tproxy.js';
import type { Family } from '../../domain/subnet.js';
import { type FirewallEnv, failure, type Log, runCommand, runSteps } from './run-steps.js';

export const tproxyPreflight = async (
  method: 'tproxy' | 'nft-tproxy',
  family: Family,
  env: FirewallEnv,
  log: Log,
  id: number = process.pid,
): Promise<E.Either<string, void>> => {
  const { checks, cleanup } =
    method === 'tproxy' ? planTproxyPreflight(family, id) : planNftTproxyPreflight(family, id);
  let problem: string | null = null;
  for (const check of checks) {
    log(2, `checking: ${check.step.argv.join(' ')}`);
    const why = failure(check.step.argv, await runCommand(check.step.argv, env));
    if (why !== null) {
      problem = `${method} cannot work here: ${check.missing} [${why}]`;
      break;
    }
  }
  await runSteps(cleanup, { env, log, keepGoing: true });
  return problem === null ? E.right(undefined) : E.left(problem);
};

/**
 * Starting the firewall helper before the client's own modules load.
 *
 * A node process takes 0.1-0.25 s to start on a small machine, and the
 * client spends as long loading before its session asks for the helper;
 * one after the other that was most of the time to the first tunnelled
 * byte. As root the helper needs no sudo or doas, so nothing can prompt:
 * main starts it first thing and the firewall driver adopts it when the
 * session asks. If the client stops before that (a usage error), `release`
 * ends its stdin and it exits, having touched nothing (it acts only on a
 * request). Not root: the session starts it as before, prompt first.
 */
import { type Either, isRight } from 'fp-ts/lib/Either.js';
import type { Method } from '../../domain/config.js';
import { firewallCommand, type HelperLaunch, helperLaunch } from '../privilege.js';
import { type SpawnedHelper, spawnHelper } from './firewall-client.js';

export const prestartFirewall = (
  opts: { readonly method: Method; readonly verbose: number },
  launch: Either<string, HelperLaunch> = helperLaunch(),
  command: readonly string[] = firewallCommand(),
): SpawnedHelper | null => {
  if (!isRight(launch) || launch.right.elevation !== 'none') return null;
  return spawnHelper({ method: opts.method, verbose: opts.verbose, command });
};

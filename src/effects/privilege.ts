/**
 * Starting the firewall helper with the right privileges: the exact command
 * (absolute node binary and script), and sudo/doas in front of it when the
 * client is not root. The decisions are in `domain/privilege.ts`.
 */
import { realpathSync } from 'node:fs';
import { delimiter } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import {
  chooseElevation,
  ELEVATE_ENV,
  type Elevation,
  elevationPrefix,
} from '../domain/privilege.js';
import { firewallEnv, which } from './firewall/run-steps.js';
import { packagePath } from './package-root.js';

/** The absolute path of `tool` on PATH or in the system directories, or null. */
export const findTool = (tool: string, path = process.env.PATH ?? ''): string | null =>
  which(
    tool,
    firewallEnv({
      PATH: path
        .split(delimiter)
        .filter((d) => d.startsWith('/'))
        .join(delimiter),
    }),
  );

const real = (p: string): string => {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
};

/**
 * `[node, script]`: this node binary and the package's `bin/sshuttle-ts`,
 * both absolute with symlinks resolved, so the sudoers snippet and the
 * command really run are the same text.
 */
export const firewallCommand = (): [string, string] => [
  real(process.execPath),
  real(packagePath('bin', 'sshuttle-ts')),
];

export interface HelperLaunch {
  readonly elevation: Elevation;
  /** Words in front of the command (`sudo -p ... --`, `doas`, or none). */
  readonly prefix: readonly string[];
}

/** How this process starts the firewall helper, or why it cannot. */
export const helperLaunch = (env = process.env): E.Either<string, HelperLaunch> => {
  const paths = { sudo: findTool('sudo', env.PATH), doas: findTool('doas', env.PATH) };
  return E.map(
    (elevation: Elevation): HelperLaunch => ({
      elevation,
      prefix: elevation === 'none' ? [] : elevationPrefix(elevation, paths[elevation] ?? elevation),
    }),
  )(
    chooseElevation({
      uid: process.geteuid?.() ?? 0,
      requested: env[ELEVATE_ENV],
      has: (tool) => paths[tool] !== null,
    }),
  );
};

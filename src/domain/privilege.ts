/**
 * Least privilege: the client runs as the invoking user and only the
 * firewall helper runs as root. This module decides how the helper is
 * elevated and what exact argv it gets, so the client, the sudoers snippet
 * and the tests all use one definition.
 *
 * - root: no elevation (the helper is started directly);
 * - otherwise `sudo -p '[local sudo] Password: ' -- <node> <script> ...` when
 *   sudo is installed, else `doas <node> <script> ...` (as upstream, which
 *   tries sudo, then doas);
 * - `SSHUTTLE_TS_ELEVATE=sudo|doas|auto` picks one explicitly (upstream has
 *   no such switch; ours is an environment variable so it needs no option).
 */
import * as E from 'fp-ts/lib/Either.js';
import type { Method } from './config.js';

/** How the firewall helper is started. */
export type Elevation = 'none' | 'sudo' | 'doas';

/** sudo's password prompt, exactly as sshuttle's. */
export const SUDO_PROMPT = '[local sudo] Password: ';

/** The environment variable that picks sudo or doas. */
export const ELEVATE_ENV = 'SSHUTTLE_TS_ELEVATE';

/**
 * The helper logs at levels 0..2, so more `-v` than two change nothing: the
 * argv is capped, which keeps the set of exact command lines a sudoers entry
 * must allow small.
 */
export const MAX_HELPER_VERBOSE = 2;

/** The helper's arguments after `<node> <script>`. */
export const firewallHelperArgs = (method: Method, verbose: number): string[] => [
  '--firewall',
  '--method',
  method,
  ...Array.from({ length: Math.min(MAX_HELPER_VERBOSE, Math.max(0, verbose)) }, () => '-v'),
];

export interface ElevationInput {
  /** The client's effective uid. */
  readonly uid: number;
  /** The value of {@link ELEVATE_ENV}, if set. */
  readonly requested: string | undefined;
  /** Whether `sudo` / `doas` is installed. */
  readonly has: (tool: 'sudo' | 'doas') => boolean;
}

/** How to start the helper, or why it cannot be started. */
export const chooseElevation = (i: ElevationInput): E.Either<string, Elevation> => {
  const req = i.requested ?? '';
  if (req !== '' && req !== 'auto' && req !== 'sudo' && req !== 'doas')
    return E.left(`${ELEVATE_ENV} must be sudo, doas or auto, not ${JSON.stringify(req)}`);
  if (i.uid === 0) return E.right('none');
  if (req === 'sudo' || req === 'doas')
    return i.has(req)
      ? E.right(req)
      : E.left(`${ELEVATE_ENV}=${req}, but ${req} is not installed (not on PATH)`);
  if (i.has('sudo')) return E.right('sudo');
  if (i.has('doas')) return E.right('doas');
  return E.left(
    'the firewall needs root: run as root, or install sudo or doas so the firewall helper can be started with it',
  );
};

/** Words in front of the helper's argv: `sudo -p PROMPT --`, `doas`, or nothing. */
export const elevationPrefix = (e: Elevation, toolPath: string): string[] =>
  e === 'sudo' ? [toolPath, '-p', SUDO_PROMPT, '--'] : e === 'doas' ? [toolPath] : [];

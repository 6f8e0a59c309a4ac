/**
 * Options that parse (so command lines written for sshuttle are understood)
 * but whose feature has not landed yet. Delete a line when its feature lands.
 */
import type { Config } from '../domain/config.js';
import { DEFAULT_WRAP } from './options-table.js';

/** What the user asked for → is it in this config? First hit is reported. */
const NOT_IMPLEMENTED_YET: readonly (readonly [string, (c: Config) => boolean])[] = [
  // The direct transport is ssh2 in-process: an external ssh or a remote command has no place in it.
  ['-e/--ssh-cmd with --transport direct', (c) => c.transport === 'direct' && c.sshCmd !== null],
  ['--helper-cmd with --transport direct', (c) => c.transport === 'direct' && c.helperCmd !== null],
  // --wrap limits mux channel ids; the direct transport has none.
  ['--wrap with --transport direct', (c) => c.transport === 'direct' && c.wrap !== DEFAULT_WRAP],
  // tproxy's UDP travels as UDP_OPEN/DATA/CLOSE frames of the helper protocol.
  ...(['tproxy', 'nft-tproxy'] as const).map(
    (m) =>
      [
        `--method ${m} with --transport direct`,
        (c: Config) => c.method === m && c.transport === 'direct',
      ] as const,
  ),
  ['--method pf', (c) => c.method === 'pf'],
  ['--method ipfw', (c) => c.method === 'ipfw'],
  ['--remote-shell', (c) => c.remoteShell !== null],
  ['--python', (c) => c.python !== null],
];

/** `"<option> is not implemented yet"` for the first such option in use, else null. */
export const notImplementedYet = (config: Config): string | null => {
  const hit = NOT_IMPLEMENTED_YET.find(([, inUse]) => inUse(config));
  return hit === undefined ? null : `${hit[0]} is not implemented yet`;
};

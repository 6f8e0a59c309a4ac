/**
 * Options that parse (so command lines written for sshuttle are understood)
 * but whose feature has not landed yet. Delete a line when its feature lands.
 */
import ipaddr from 'ipaddr.js';
import type { Config } from '../domain/config.js';
import { usesHelper } from '../domain/transport-choice.js';
import { DEFAULT_WRAP } from './options-table.js';

const isLoopback = (ip: string): boolean => ipaddr.parse(ip).range() === 'loopback';

/** What the user asked for → is it in this config? First hit is reported. */
const NOT_IMPLEMENTED_YET: readonly (readonly [string, (c: Config) => boolean])[] = [
  // The helper transport carries TCP and DNS; -N and -H over it come later.
  ['--auto-nets with the helper transport', (c) => c.autoNets && usesHelper(c)],
  ['--auto-hosts with the helper transport', (c) => c.autoHosts && usesHelper(c)],
  ['--seed-hosts with the helper transport', (c) => c.seedHosts.length > 0 && usesHelper(c)],
  // The direct transport is ssh2 in-process: an external ssh or a remote command has no place in it.
  ['-e/--ssh-cmd with --transport direct', (c) => c.transport === 'direct' && c.sshCmd !== null],
  ['--helper-cmd with --transport direct', (c) => c.transport === 'direct' && c.helperCmd !== null],
  // tproxy's UDP travels as UDP_OPEN/DATA/CLOSE frames of the helper protocol.
  [
    '--method tproxy with --transport direct',
    (c) => c.method === 'tproxy' && c.transport === 'direct',
  ],
  ['--method pf', (c) => c.method === 'pf'],
  ['--method ipfw', (c) => c.method === 'ipfw'],
  ['--daemon', (c) => c.daemon],
  ['--syslog', (c) => c.syslog],
  ['--user', (c) => c.user !== null],
  ['--group', (c) => c.group !== null],
  ['--namespace', (c) => c.namespace !== null],
  ['--namespace-pid', (c) => c.namespacePid !== null],
  ['--sudoers-no-modify', (c) => c.sudoersNoModify],
  ['--sudoers-user', (c) => c.sudoersUser !== null],
  ['--remote-shell', (c) => c.remoteShell !== null],
  ['--python', (c) => c.python !== null],
  ['--wrap', (c) => c.wrap !== DEFAULT_WRAP],
  [
    '--listen on a non-loopback address (router mode)',
    (c) => c.listen.some((l) => l.ip !== null && !isLoopback(l.ip)),
  ],
];

/** `"<option> is not implemented yet"` for the first such option in use, else null. */
export const notImplementedYet = (config: Config): string | null => {
  const hit = NOT_IMPLEMENTED_YET.find(([, inUse]) => inUse(config));
  return hit === undefined ? null : `${hit[0]} is not implemented yet`;
};

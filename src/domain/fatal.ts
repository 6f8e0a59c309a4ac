/**
 * Fatal errors as the user reads them: one line, the cause (what failed,
 * from the driver's message) and a hint (what to do about it).
 */
import type { EventOf } from './events.js';

/** Why an SSH connection could not be made (the ssh driver's error kinds). */
export type SshFailureKind =
  | 'config'
  | 'connect-failed'
  | 'timeout'
  | 'handshake-failed'
  | 'host-key-unknown'
  | 'host-key-changed'
  | 'host-key-revoked'
  | 'auth-failed'
  | 'proxy-jump';

/** What kind of failure ended the session; picks the hint. */
export type FatalCause =
  | SshFailureKind
  | 'auto-nets'
  | 'helper'
  | 'node-not-found'
  | 'firewall'
  | 'firewall-root'
  | 'listen'
  | 'ssh-lost';

export const HINTS: Readonly<Record<FatalCause, string>> = {
  config: 'fix the ssh config file or option named above',
  'connect-failed':
    'check the host name and port (-r HOST:PORT) and that sshd runs there and is reachable from here',
  timeout:
    'the server did not answer in time: check the address and any firewall on the way, or raise ConnectTimeout',
  'handshake-failed': 'the SSH handshake failed (no common algorithm?): run with -vv to see why',
  'host-key-unknown':
    "the server's host key is not in known_hosts: check it with `ssh HOST` once (which records it), or set StrictHostKeyChecking accept-new",
  'host-key-changed':
    "if the server's key really changed, remove the old one with `ssh-keygen -R HOST`; otherwise someone may be intercepting the connection",
  'host-key-revoked': 'the key is marked @revoked in known_hosts: do not connect to this server',
  'auth-failed':
    'check the user and the key (IdentityFile in the ssh config, ssh-agent) or password; try `ssh USER@HOST` by hand',
  'proxy-jump': 'check the ProxyJump host, and that it allows TCP forwarding (AllowTcpForwarding)',
  'auto-nets':
    "-N reads the server's routes with `ip route` or `netstat -rn`: install one there, or name the subnets instead of -N",
  helper: 'run with -v to see the helper on the server, or use --transport direct',
  'node-not-found':
    'install Node.js >= 18 on the server, point --node at it, or use --transport direct',
  firewall:
    'the firewall helper needs root and a working nft or iptables: run sshuttle-ts as root (or with sudo), or pick --method nat/nft',
  'firewall-root': 'run sshuttle-ts as root (or with sudo): only root may change the firewall',
  listen:
    'another program (or another sshuttle-ts) holds that port: pick another with -l, or stop it',
  'ssh-lost':
    'the server or the network went away; without --no-reconnect the rules stay and sshuttle-ts reconnects',
};

const CAUSES = new Set<string>(Object.keys(HINTS));

export const isFatalCause = (s: string): s is FatalCause => CAUSES.has(s);

/** A driver's message that carries no cause: guess it from the words. */
export const classifyMessage = (
  source: 'ssh' | 'firewall' | 'listen',
  message: string,
): FatalCause => {
  if (source === 'listen') return 'listen';
  if (source === 'firewall')
    return /must run as root|not permitted|EPERM|EACCES/i.test(message)
      ? 'firewall-root'
      : 'firewall';
  if (/node not found/.test(message)) return 'node-not-found';
  if (/helper/i.test(message)) return 'helper';
  if (/timed out|no SSH handshake/i.test(message)) return 'timeout';
  return 'connect-failed';
};

/** Messages that already say what to do (the driver knows the exact file or command). */
const ALREADY_HINTED: Partial<Record<FatalCause, RegExp>> = {
  'node-not-found': /--transport direct/,
  'host-key-changed': /ssh-keygen -R/,
  // The bind error already says the address is not (yet) here; a port hint would mislead.
  listen: /EADDRNOTAVAIL/,
};

/** The `ssh.failed` event for a transport's connect failure (its kind, when it has one). */
export const sshFailedEvent = (
  t: number,
  failure: { readonly message: string; readonly kind?: string },
): EventOf<'ssh.failed'> =>
  failure.kind === undefined
    ? { kind: 'ssh.failed', t, message: failure.message }
    : { kind: 'ssh.failed', t, message: failure.message, cause: failure.kind };

/** `cause (hint: ...)` on one line; no second hint when the message already has one. */
export const fatalLine = (cause: FatalCause, message: string): string => {
  const line = message.replace(/\s*[\r\n]+\s*/g, ' ').trim();
  if (ALREADY_HINTED[cause]?.test(line) === true) return line;
  return `${line} (hint: ${HINTS[cause]})`;
};

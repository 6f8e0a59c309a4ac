/**
 * The sudoers snippet `--sudoers-no-modify` prints: it lets one user (or
 * %group, or alias) start the firewall helper as root without a password,
 * and nothing else.
 *
 * Upstream prints `Cmnd_Alias SSHUTTLExxx = /usr/bin/env PYTHONPATH=... sshuttle *`:
 * the `*` allows any arguments, so anyone holding the entry can run the
 * whole client as root (with `-e` any program: upstream #631), and the
 * PYTHONPATH part kept drifting from what the client really ran (#1041,
 * #1096, #1164). Ours lists the exact command lines the client runs
 * (absolute node path, absolute script path, the helper's exact arguments
 * for every method and the capped verbosity), in a dedicated alias named
 * after the installation, so several installations can each have one.
 */
import * as E from 'fp-ts/lib/Either.js';
import { MethodC } from './config.js';
import { firewallHelperArgs, MAX_HELPER_VERBOSE } from './privilege.js';

export interface SudoersInput {
  /** `--sudoers-user`, or the current user. */
  readonly user: string;
  /** Absolute path of the node binary the client runs the helper with. */
  readonly node: string;
  /** Absolute path of the sshuttle-ts script. */
  readonly script: string;
}

/**
 * Paths go into sudoers verbatim, so only characters with no meaning there
 * (no spaces, `,` `:` `=` `\` `!` wildcards or quotes) are allowed.
 */
const SAFE_PATH = /^\/[A-Za-z0-9_./+@-]*$/;

/** A user name, `%group`, `#uid`, `%#gid` or an upper-case User_Alias. */
const SAFE_USER = /^(%#|%|#)?[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/;

/** 32-bit FNV-1a, as 8 hex digits: a stable name per installation. */
const fnv1a = (text: string): string => {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
};

/** The Cmnd_Alias name for this node and script. */
export const sudoersAlias = (node: string, script: string): string =>
  `SSHUTTLE_TS_${fnv1a(`${node}\0${script}`).toUpperCase()}`;

/** Every command line the client may run as root, as sudo sees it (words joined by spaces). */
export const allowedCommands = (node: string, script: string): string[] =>
  Object.keys(MethodC.keys).flatMap((method) =>
    Array.from({ length: MAX_HELPER_VERBOSE + 1 }, (_, v) =>
      [node, script, ...firewallHelperArgs(method as keyof typeof MethodC.keys, v)].join(' '),
    ),
  );

/** The snippet, or why it cannot be written safely. */
export const sudoersSnippet = (i: SudoersInput): E.Either<string, string> => {
  for (const [what, p] of [
    ['node binary', i.node],
    ['script', i.script],
  ] as const) {
    if (!SAFE_PATH.test(p))
      return E.left(
        `the ${what} path ${JSON.stringify(p)} has characters a sudoers entry cannot hold safely; install sshuttle-ts under a plain path`,
      );
  }
  if (!SAFE_USER.test(i.user))
    return E.left(`--sudoers-user ${JSON.stringify(i.user)} is not a user, %group, #uid or alias`);
  const alias = sudoersAlias(i.node, i.script);
  const commands = allowedCommands(i.node, i.script);
  return E.right(
    [
      `# sshuttle-ts: let ${i.user} start the firewall helper as root without a password.`,
      '# It allows exactly these command lines and nothing else. Install it with',
      '#   sshuttle-ts --sudoers-no-modify > f && sudo visudo -cf f && sudo install -m 0440 f /etc/sudoers.d/sshuttle-ts',
      `Cmnd_Alias ${alias} = \\`,
      ...commands.map((c, n) => `    ${c}${n === commands.length - 1 ? '' : ', \\'}`),
      `${i.user} ALL=(root) NOPASSWD: ${alias}`,
      '',
    ].join('\n'),
  );
};

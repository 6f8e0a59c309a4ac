/**
 * `--sudoers-no-modify [--sudoers-user NAME]`: print the sudoers snippet that
 * lets NAME (default: the current user) start exactly this installation's
 * firewall helper without a password, then exit. Nothing is written.
 */
import { userInfo } from 'node:os';
import * as E from 'fp-ts/lib/Either.js';
import type { Config } from '../domain/config.js';
import { sudoersSnippet } from '../domain/sudoers.js';
import { firewallCommand } from '../effects/privilege.js';

const currentUser = (): string => {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? 'root';
  }
};

/** Prints the snippet; returns the exit code (2 when it cannot be written safely). */
export const printSudoers = (config: Config): number => {
  const [node, script] = firewallCommand();
  const snippet = sudoersSnippet({ user: config.sudoersUser ?? currentUser(), node, script });
  if (E.isLeft(snippet)) {
    process.stderr.write(`sshuttle-ts: ${snippet.left}\n`);
    return 2;
  }
  process.stdout.write(snippet.right);
  return 0;
};

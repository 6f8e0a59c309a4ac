/**
 * The built-in ssh connection as the client makes it: this process's HOME,
 * USER and ssh-agent, prompts on its terminal, ssh2's lines in our log.
 */
import type { Logger } from 'pino';
import type { Remote } from '../../domain/config.js';
import type { CoalesceUntil } from '../coalesce-writes.js';
import { connectSsh } from './connect.js';
import { ttyPrompter } from './tty-prompt.js';

export const connectSshHere = (
  remote: Remote,
  sshConfigPath: string,
  log: Logger,
  coalesce: CoalesceUntil = 'turn',
) =>
  connectSsh({
    coalesce,
    remote,
    sshConfigPath,
    env: {
      HOME: process.env.HOME,
      USER: process.env.USER,
      SSH_AUTH_SOCK: process.env.SSH_AUTH_SOCK,
    },
    prompt: ttyPrompter(),
    log: (level, msg, fields) => log[level](fields ?? {}, msg),
  });

/**
 * Shapes shared by the built-in SSH client's driver files: the error it
 * reports, the logger and the terminal prompter it is handed.
 */

import type { SshFailureKind } from '../../domain/fatal.js';

/** Why a connection could not be made; `message` is one line for the user. */
export interface SshError {
  readonly kind: SshFailureKind;
  readonly message: string;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type SshLog = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** Reads answers from the user's terminal. */
export interface Prompter {
  /**
   * Shows `message` (it may span several lines; the last is the prompt) and
   * reads one line without its newline; `secret` turns echo off. Resolves to
   * null when the user gave up (end of input).
   */
  readLine(message: string, opts: { readonly secret: boolean }): Promise<string | null>;
}

/** The parts of the environment the client reads (process.env fits). */
export interface SshEnv {
  readonly HOME?: string | undefined;
  readonly USER?: string | undefined;
  readonly SSH_AUTH_SOCK?: string | undefined;
}

export const sshError = (kind: SshError['kind'], message: string): SshError => ({
  kind,
  message: oneLine(message),
});

/** Log and error text must stay on one line whatever a server or file put in it. */
export const oneLine = (s: string): string =>
  s.replace(/[\r\n]+/g, ' | ').replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '?');

/**
 * The `sshuttle_unix` addon (src/effects/native/sshuttle_unix.c): one
 * datagram to a Unix socket (sd_notify, syslog) and setsid(). Loaded once,
 * lazily; Left says how to get it when it is not built.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { packageRoot } from './package-root.js';

export interface UnixAddon {
  readonly sendDatagram: (path: string, data: Buffer) => void;
  readonly setsid: () => number;
}

const ADDON = 'build/Release/sshuttle_unix.node';
let loaded: E.Either<string, UnixAddon> | undefined;

export const unixAddon = (): E.Either<string, UnixAddon> => {
  if (loaded !== undefined) return loaded;
  const root = packageRoot();
  const file = root === undefined ? ADDON : join(root, ADDON);
  try {
    if (!existsSync(file)) throw new Error('not built');
    loaded = E.right(createRequire(import.meta.url)(file) as UnixAddon);
  } catch (e) {
    loaded = E.left(`native addon ${file} unavailable (${(e as Error).message}): run npm install`);
  }
  return loaded;
};

/** Sends one datagram; Left with the reason instead of throwing. */
export const sendDatagram = (path: string, data: Buffer): E.Either<string, void> => {
  const addon = unixAddon();
  if (E.isLeft(addon)) return addon;
  try {
    addon.right.sendDatagram(path, data);
    return E.right(undefined);
  } catch (e) {
    return E.left((e as Error).message);
  }
};

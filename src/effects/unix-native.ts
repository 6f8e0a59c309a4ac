/**
 * The `sshuttle_unix` addon (src/effects/native/sshuttle_unix.c): one
 * datagram to a Unix socket (sd_notify, syslog), setsid() and madvise
 * (startup-pages.ts). Loaded once, lazily; Left says how to get it when it
 * is not built.
 */
import * as E from 'fp-ts/lib/Either.js';
import { addonLoader } from './addon-loader.js';

export interface UnixAddon {
  readonly sendDatagram: (path: string, data: Buffer) => void;
  readonly setsid: () => number;
  /** madvise(start, length, MADV_DONTNEED); throws with the errno's code. */
  readonly dropPages: (start: bigint, length: number) => void;
}

export const unixAddon = addonLoader<UnixAddon>('sshuttle_unix');

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

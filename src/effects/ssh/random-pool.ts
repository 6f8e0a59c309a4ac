/**
 * Pooled random bytes for ssh2's packet padding.
 *
 * ssh2 fills every packet's 4-255 padding bytes with its own
 * `crypto.randomFillSync` call: one trip into OpenSSL per SSH packet, 8% of
 * the client's CPU in a bulk upload. Here small requests are served from a
 * 64 KiB pool filled by the real `randomFillSync` (the same CSPRNG, each
 * byte handed out once, the used part zeroed); larger ones go straight to
 * it. ssh2 takes `randomFillSync` from `node:crypto` when it is loaded, so
 * this must be installed before ssh2 is: main.ts does it before it loads the
 * client.
 */
import crypto from 'node:crypto';

const POOL_SIZE = 64 * 1024;
/** Requests above this go to OpenSSL directly (keys, nonces of key exchange). */
const SMALL = 256;

type FillSync = typeof crypto.randomFillSync;

let installed: FillSync | null = null;

export const installRandomPool = (): void => {
  if (installed !== null) return;
  const real = crypto.randomFillSync as (buf: unknown, offset?: number, size?: number) => unknown;
  const pool = Buffer.allocUnsafeSlow(POOL_SIZE);
  let used = POOL_SIZE;
  const pooled = (buf: unknown, offset?: number, size?: number): unknown => {
    if (!(buf instanceof Uint8Array)) return real(buf, offset, size);
    const start = offset ?? 0;
    const n = size ?? buf.length - start;
    if (n > SMALL || start < 0 || n < 0 || start + n > buf.length) return real(buf, offset, size);
    if (used + n > POOL_SIZE) {
      real(pool);
      used = 0;
    }
    buf.set(pool.subarray(used, used + n), start);
    pool.fill(0, used, used + n);
    used += n;
    return buf;
  };
  installed = pooled as FillSync;
  crypto.randomFillSync = installed;
};

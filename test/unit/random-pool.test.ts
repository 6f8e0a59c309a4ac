/**
 * The pooled randomFillSync: small requests come from the pool, each byte
 * handed out once (no two requests see the same bytes), larger ones and
 * non-byte views go to OpenSSL as before; ssh2 loaded afterwards uses it.
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { installRandomPool } from '../../src/effects/ssh/random-pool.js';

describe('installRandomPool', () => {
  const original = crypto.randomFillSync;
  beforeAll(() => installRandomPool());

  it('replaces randomFillSync once (a second install keeps the first pool)', () => {
    const first = crypto.randomFillSync;
    expect(first).not.toBe(original);
    installRandomPool();
    expect(crypto.randomFillSync).toBe(first);
  });

  it('fills exactly the requested range, with bytes never handed out twice', () => {
    const seen = new Set<string>();
    // 64 KiB of 16-byte requests: the pool is refilled on the way.
    for (let i = 0; i < 6000; i++) {
      const b = Buffer.alloc(40, 0xaa);
      crypto.randomFillSync(b, 8, 16);
      expect(b.subarray(0, 8).every((x) => x === 0xaa)).toBe(true);
      expect(b.subarray(24).every((x) => x === 0xaa)).toBe(true);
      const key = b.subarray(8, 24).toString('hex');
      expect(seen.has(key)).toBe(false);
      seen.add(key);
    }
  });

  it('looks random: byte values spread over the whole range', () => {
    const b = Buffer.alloc(200 * 255);
    for (let o = 0; o < b.length; o += 200) crypto.randomFillSync(b, o, 200);
    const counts = new Array<number>(256).fill(0);
    for (const x of b) counts[x] = (counts[x] ?? 0) + 1;
    // 51,000 bytes over 256 values: about 199 each; none absent or dominant.
    expect(Math.min(...counts)).toBeGreaterThan(100);
    expect(Math.max(...counts)).toBeLessThan(320);
  });

  it('large requests and other views still work', () => {
    const big = crypto.randomFillSync(Buffer.alloc(100_000));
    expect(big.some((x) => x !== 0)).toBe(true);
    const words = crypto.randomFillSync(new Uint32Array(8));
    expect(words.some((x) => x !== 0)).toBe(true);
    expect(() => crypto.randomFillSync(Buffer.alloc(4), 3, 2)).toThrow();
  });

  it("ssh2's packet code, loaded after the install, pads from the pool", () => {
    const req = createRequire(import.meta.url);
    const path = req.resolve('ssh2/lib/protocol/crypto.js');
    delete req.cache[path];
    // Watch the pooled function while ssh2's module takes its copy.
    const pooled = crypto.randomFillSync;
    const sizes: (number | undefined)[] = [];
    const watched = ((buf: Uint8Array, offset?: number, size?: number) => {
      sizes.push(size);
      return pooled(buf, offset, size);
    }) as typeof crypto.randomFillSync;
    crypto.randomFillSync = watched;
    try {
      const { NullCipher } = req(path) as {
        NullCipher: new (
          seq: number,
          onWrite: () => void,
        ) => { allocPacket: (n: number) => Buffer };
      };
      const packet = new NullCipher(0, () => {}).allocPacket(10);
      expect(sizes).toEqual([packet[4]]);
    } finally {
      crypto.randomFillSync = pooled;
      delete req.cache[path];
    }
  });
});

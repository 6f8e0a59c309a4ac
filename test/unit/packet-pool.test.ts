/**
 * Pooled SSH packet buffers: the AEAD packet layout matches ssh2's own, a
 * slab is never handed out again while the socket may still read it, and
 * what leaves decrypts to exactly what was sent, packet after packet, with
 * the writes completing late and in bursts.
 */
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { fc, it as itProp } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { aeadPacketLayout, MIN_PADDING, TAG_LEN } from '../../src/domain/ssh-packet.js';
import { poolPackets, SLAB_SIZE } from '../../src/effects/ssh/packet-pool.js';

const require = createRequire(import.meta.url);
interface Cipher {
  allocPacket(n: number): Buffer;
  encrypt(p: Buffer): void;
  constructor: { name: string };
}
interface Decipher {
  decrypt(data: Buffer, p: number, len: number): unknown;
}
const ssh2Crypto = require('ssh2/lib/protocol/crypto.js') as {
  CIPHER_INFO: Record<string, { keyLen: number; ivLen: number }>;
  createCipher: (c: unknown) => Cipher;
  createDecipher: (c: unknown) => Decipher;
  bindingAvailable: boolean;
};

const ALGOS = ['aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com'] as const;
const key = (n: number, seed: number) => Buffer.alloc(n, seed);

/** The same keys on both ends (the cipher's outbound, the decipher's inbound). */
const keysOf = (algo: string) => {
  const info = ssh2Crypto.CIPHER_INFO[algo]!;
  return { info, key: key(info.keyLen, 1), iv: info.ivLen ? key(info.ivLen, 2) : undefined };
};
const cipherFor = (algo: string, onWrite: (p: Buffer) => void): Cipher => {
  const k = keysOf(algo);
  return ssh2Crypto.createCipher({
    outbound: { onWrite, cipherInfo: k.info, cipherKey: k.key, cipherIV: k.iv, seqno: 0 },
  });
};
const decipherFor = (algo: string, onPayload: (p: Buffer) => void): Decipher => {
  const k = keysOf(algo);
  return ssh2Crypto.createDecipher({
    inbound: { onPayload, decipherInfo: k.info, decipherKey: k.key, decipherIV: k.iv, seqno: 0 },
  });
};

describe('aeadPacketLayout', () => {
  itProp.prop([fc.nat(300_000), fc.constantFrom(8 as const, 16 as const)])(
    'pads 1 + payload to the block with 4 to block+3 bytes; length field and tag outside',
    (n, block) => {
      const l = aeadPacketLayout(n, block);
      expect((1 + n + l.padding) % block).toBe(0);
      expect(l.padding).toBeGreaterThanOrEqual(MIN_PADDING);
      expect(l.padding).toBeLessThan(MIN_PADDING + block);
      expect(l.packetLength).toBe(1 + n + l.padding);
      expect(l.total).toBe(4 + l.packetLength + TAG_LEN);
    },
  );

  it.each(ALGOS)('agrees with ssh2 %s on every size up to a slab', (algo) => {
    const c = cipherFor(algo, () => {});
    const block = algo.startsWith('aes') ? 16 : 8;
    for (let n = 0; n < SLAB_SIZE; n += 1 + (n % 97)) {
      const theirs = c.allocPacket(n);
      const l = aeadPacketLayout(n, block);
      expect([theirs.length, theirs.readUInt32BE(0), theirs[4]]).toEqual([
        l.total,
        l.packetLength,
        l.padding,
      ]);
    }
  });
});

/** A socket stand-in whose write callbacks the test releases, checking each chunk is untouched meanwhile. */
const slowSink = () => {
  const pending: (() => void)[] = [];
  let bad = 0;
  const snapshots = new Map<Uint8Array, Buffer>();
  const w = new Writable({
    highWaterMark: 1 << 30,
    write(chunk: Buffer, _enc, cb) {
      pending.push(() => {
        const snap = snapshots.get(chunk);
        if (snap === undefined || !snap.equals(chunk)) bad++;
        cb();
      });
    },
  });
  return {
    w,
    snapshot: (p: Buffer) => snapshots.set(p, Buffer.from(p)),
    release: (k: number) => {
      for (const f of pending.splice(0, k)) f();
    },
    pending: () => pending.length,
    bad: () => bad,
  };
};

describe('poolPackets', () => {
  it.skipIf(!ssh2Crypto.bindingAvailable).each(ALGOS)(
    '%s: bytes decrypt to what was sent; slabs come back only after their write',
    async (algo) => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ size: fc.integer({ min: 0, max: 33_000 }), release: fc.nat(6) }), {
            minLength: 1,
            maxLength: 40,
          }),
          async (steps) => {
            const sink = slowSink();
            const wire: Buffer[] = [];
            const proto = {
              _cipher: cipherFor(algo, (p) => {
                wire.push(Buffer.from(p));
                sink.snapshot(p);
                sink.w.write(p);
              }),
            };
            const pool = poolPackets(proto, sink.w)!;
            const sent: Buffer[] = [];
            for (const s of steps) {
              const payload = Buffer.alloc(s.size);
              for (let i = 0; i < s.size; i += 997) payload[i] = (i + sent.length) & 0xff;
              const pkt = proto._cipher.allocPacket(s.size);
              payload.copy(pkt, 5);
              sent.push(payload);
              proto._cipher.encrypt(pkt);
              sink.release(s.release);
              await new Promise((r) => setImmediate(r));
            }
            sink.release(1 << 20);
            await new Promise((r) => setImmediate(r));
            expect(sink.bad()).toBe(0);
            const got: Buffer[] = [];
            const d = decipherFor(algo, (p) => {
              got.push(Buffer.from(p));
            });
            const all = Buffer.concat(wire);
            d.decrypt(all, 0, all.length);
            expect(got).toEqual(sent);
            const { made, pooled } = pool.stats();
            expect(pooled).toBe(
              steps.filter((s) => {
                const t = aeadPacketLayout(s.size, algo.startsWith('aes') ? 16 : 8).total;
                return t >= 4096 && t <= SLAB_SIZE;
              }).length,
            );
            expect(made).toBeLessThanOrEqual(pooled);
          },
        ),
        { numRuns: 25 },
      );
    },
  );

  it.skipIf(!ssh2Crypto.bindingAvailable)(
    'reuses a slab once its write has completed, not before',
    () => {
      const sink = slowSink();
      const proto = { _cipher: cipherFor(ALGOS[0], (p) => sink.w.write(p)) };
      const pool = poolPackets(proto, sink.w)!;
      const a = proto._cipher.allocPacket(30_000);
      proto._cipher.encrypt(a);
      const b = proto._cipher.allocPacket(30_000);
      expect(b.buffer).not.toBe(a.buffer);
      proto._cipher.encrypt(b);
      sink.release(1); // a's write is done
      const c = proto._cipher.allocPacket(30_000);
      expect(c.buffer).toBe(a.buffer);
      expect(pool.stats().made).toBe(2);
    },
  );

  it.skipIf(!ssh2Crypto.bindingAvailable)('wraps the cipher of every later key exchange', () => {
    const sink = slowSink();
    const proto: { _cipher: Cipher } = { _cipher: cipherFor(ALGOS[0], (p) => sink.w.write(p)) };
    const pool = poolPackets(proto, sink.w)!;
    proto._cipher = cipherFor(ALGOS[1], (p) => sink.w.write(p));
    proto._cipher.allocPacket(20_000);
    expect(pool.stats().pooled).toBe(1);
  });

  it('leaves other ciphers, and an object that is not ssh2 protocol, alone', () => {
    const sink = slowSink();
    const other = { allocPacket: (n: number) => Buffer.alloc(n + 40) };
    const proto = { _cipher: other };
    const pool = poolPackets(proto, sink.w)!;
    expect(proto._cipher.allocPacket(20_000).length).toBe(20_040);
    expect(pool.stats().pooled).toBe(0);
    expect(poolPackets({}, sink.w)).toBeNull();
  });
});

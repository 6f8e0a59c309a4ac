/**
 * Reused buffers for the SSH packets ssh2 sends.
 *
 * ssh2 allocates a fresh Buffer for every outgoing packet (`allocPacket`),
 * encrypts it in place and writes it to the socket. In a bulk upload that
 * is two 32 KiB buffers per 64 KiB relayed, each its own ArrayBuffer with
 * memory outside V8's heap: the largest part of the garbage the collector
 * chases (about a fifth of the client's CPU in an upload profile). Here, for
 * the AEAD ciphers whose encryption is in place (aes-gcm and
 * chacha20-poly1305 through ssh2's native binding), packets are cut from a
 * free list of slabs, and a slab goes back to the list when the socket's
 * write callback says the kernel has the bytes.
 *
 * Safety rests on two facts: ssh2 hands a packet to the socket exactly once
 * and keeps no reference after encrypting it, and a Writable's callback
 * runs only when the chunk has been consumed. A packet ssh2 drops (socket
 * no longer writable) or a write that never calls back leaves its slab to
 * the garbage collector, never to the free list. Other ciphers, and
 * packets under 4 KiB (which Node already cuts from its own pool) or over a
 * slab, get ssh2's allocation.
 */
import crypto from 'node:crypto';
import type { Writable } from 'node:stream';
import { aeadPacketLayout } from '../../domain/ssh-packet.js';

/** Room for the largest CHANNEL_DATA packet of a 32 KiB maximum packet size, and then some. */
export const SLAB_SIZE = 32 * 1024 + 512;
const POOL_MIN = 4096;
/** Free slabs kept at most (the rest are left to the collector). */
const MAX_FREE = 64;

interface Cipher {
  allocPacket(payloadLength: number): Buffer;
  constructor: { name: string };
}

/** ssh2's in-place AEAD ciphers and their block sizes. */
const AEAD_BLOCK: Record<string, 8 | 16> = {
  AESGCMCipherBinding: 16,
  ChaChaPolyCipherBinding: 8,
};

export interface PacketPool {
  /** Slabs made so far and slabs free now (for tests and the log). */
  readonly stats: () => { readonly made: number; readonly free: number; readonly pooled: number };
}

export const poolPackets = (protocol: object, socket: Writable): PacketPool | null => {
  const p = protocol as { _cipher?: Cipher };
  if (!('_cipher' in p)) return null; // not the ssh2 we know: leave it alone
  const free: Buffer[] = [];
  const lent = new WeakMap<ArrayBufferLike, Buffer>();
  let made = 0;
  let pooled = 0;

  const take = (size: number): Buffer => {
    let slab = free.pop();
    if (slab === undefined) {
      slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      made++;
    }
    lent.set(slab.buffer, slab);
    pooled++;
    return slab.subarray(0, size);
  };
  const giveBack = (buffer: ArrayBufferLike): void => {
    const slab = lent.get(buffer);
    if (slab === undefined) return;
    lent.delete(buffer);
    if (free.length < MAX_FREE) free.push(slab);
  };

  const wrap = (cipher: Cipher | undefined): Cipher | undefined => {
    const block = cipher === undefined ? undefined : AEAD_BLOCK[cipher.constructor.name];
    if (cipher === undefined || block === undefined) return cipher;
    const own = cipher.allocPacket.bind(cipher);
    cipher.allocPacket = (payloadLength: number): Buffer => {
      const layout = aeadPacketLayout(payloadLength, block);
      if (layout.total < POOL_MIN || layout.total > SLAB_SIZE) return own(payloadLength);
      const packet = take(layout.total);
      packet.writeUInt32BE(layout.packetLength, 0);
      packet[4] = layout.padding;
      crypto.randomFillSync(packet, 5 + payloadLength, layout.padding);
      return packet;
    };
    return cipher;
  };

  let current = wrap(p._cipher);
  Object.defineProperty(p, '_cipher', {
    configurable: true,
    enumerable: true,
    get: () => current,
    // A new cipher at every key exchange.
    set: (c: Cipher | undefined) => {
      current = wrap(c);
    },
  });

  const write = socket.write;
  socket.write = function (this: Writable, chunk: unknown, ...rest: unknown[]): boolean {
    if (!(chunk instanceof Uint8Array) || !lent.has(chunk.buffer)) {
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    }
    const buffer = chunk.buffer;
    const cb =
      typeof rest[rest.length - 1] === 'function'
        ? (rest.pop() as (e?: Error | null) => void)
        : null;
    return (write as (...a: unknown[]) => boolean).call(
      this,
      chunk,
      ...rest,
      (err?: Error | null) => {
        // An error may mean the bytes never left; they are not in use either way.
        giveBack(buffer);
        cb?.(err);
      },
    );
  } as Writable['write'];

  return { stats: () => ({ made, free: free.length, pooled }) };
};

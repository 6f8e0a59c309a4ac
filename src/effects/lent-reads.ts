/**
 * Socket reads into one shared buffer instead of a fresh one per read.
 *
 * By default Node allocates a new 64 KiB buffer for every read of a socket.
 * In a bulk upload through the direct transport that is one allocation per
 * 64 KiB relayed, and their collection was a fifth of the client's CPU
 * (docs/performance-log.md). Node's `onread` option reads into a buffer the
 * caller owns; the bytes are valid only until the callback returns. The
 * direct transport copies every chunk into SSH packets before `write`
 * returns when the channel has window, so most reads need no buffer of
 * their own at all; a write that would keep the chunk copies it first
 * (the streams driver asks `owns`).
 *
 * `onread` is a constructor option of `net.Socket`; a server's accepted
 * sockets cannot be given it. The two symbol-keyed fields it sets are found
 * once on a probe socket and set on the accepted socket before it reads. On a
 * Node where they cannot be found, sockets keep Node's own reads.
 */
import * as net from 'node:net';

/** Node's read size for a stream (libuv's suggested size). */
export const LENT_READ_BYTES = 64 * 1024;

type OnChunk = (chunk: Buffer) => void;

interface UserBufferHandle {
  readonly useUserBuffer?: (buf: Uint8Array) => void;
  readonly reading?: boolean;
}

interface OnreadKeys {
  readonly buffer: symbol;
  readonly callback: symbol;
}

let keys: OnreadKeys | null | undefined;

/** The fields `onread` sets on a socket, or null on a Node without them. */
const onreadKeys = (): OnreadKeys | null => {
  if (keys !== undefined) return keys;
  const marker = Buffer.alloc(1);
  const callback = (): void => {};
  // `onread` is documented for net.connect; @types/node lacks it on the constructor.
  const probe = new net.Socket({
    onread: { buffer: marker, callback },
  } as net.SocketConstructorOpts);
  const own = probe as unknown as Record<symbol, unknown>;
  const symbols = Object.getOwnPropertySymbols(probe);
  const buffer = symbols.find((s) => own[s] === marker);
  const cb = symbols.find((s) => own[s] === callback);
  probe.destroy();
  keys = buffer !== undefined && cb !== undefined ? { buffer, callback: cb } : null;
  return keys;
};

export interface LentReads {
  /**
   * Makes `socket`, which must not have started reading (accepted with
   * `pauseOnConnect`), read into the shared buffer and hand each read to
   * `onChunk` as a view of it. False when it cannot (the caller then reads
   * the usual way).
   */
  readonly lend: (socket: net.Socket, onChunk: OnChunk) => boolean;
  /** `chunk` is a view of the shared buffer: to keep it, copy it. */
  readonly owns: (chunk: Uint8Array) => boolean;
}

/**
 * One buffer serves every socket: reads run one at a time on this thread
 * and each is consumed before the next starts.
 */
export const makeLentReads = (size: number = LENT_READ_BYTES): LentReads | null => {
  const k = onreadKeys();
  if (k === null) return null;
  const shared = Buffer.allocUnsafeSlow(size);
  const arena = shared.buffer;
  return {
    lend: (socket, onChunk) => {
      const handle = (socket as unknown as { _handle?: UserBufferHandle | null })._handle;
      if (typeof handle?.useUserBuffer !== 'function' || handle.reading === true) return false;
      const own = socket as unknown as Record<symbol, unknown>;
      own[k.buffer] = shared;
      own[k.callback] = (nread: number) => {
        onChunk(shared.subarray(0, nread));
      };
      handle.useUserBuffer(shared);
      return true;
    },
    owns: (chunk) => chunk.buffer === arena,
  };
};

/**
 * One mux channel as a Node `Duplex`, so the streams driver can relay it as
 * the `'remote'` side of a connection exactly like a direct-tcpip channel.
 *
 *   write(chunk)   -> mux `localData` (one event per chunk); the callback is
 *                     held while the mux has asked to pause (`pauseLocal`);
 *                     a chunk of a shared read buffer goes as `transient`
 *   end()          -> mux `localEof`
 *   destroy()      -> mux `localAbort` (unless the mux closed it)
 *   mux `deliver`  -> push(); the bytes count as drained (`localDrained`) once
 *                     push() says there is room, else when `_read` asks again
 *   mux `endLocal` -> push(null)
 *   mux `closeLocal` -> destroy once what was pushed has been read
 */
import { Duplex } from 'node:stream';
import type { MuxEvent } from '../../domain/mux/index.js';

type ChannelEvent = Extract<
  MuxEvent,
  { kind: 'localData' | 'localEof' | 'localDrained' | 'localAbort' }
>;

export interface ChannelDuplexOptions {
  readonly channel: number;
  /** Feeds the mux (the driver queues nested calls). */
  readonly dispatch: (e: ChannelEvent) => void;
  readonly readableHighWaterMark?: number;
  readonly writableHighWaterMark?: number;
  /** Whether a written chunk is a view of a shared read buffer (reused after the write). */
  readonly isTransient?: (chunk: Uint8Array) => boolean;
  /** Whether the mux folds a transient chunk now and keeps no view of it. */
  readonly muxTakesTransient?: () => boolean;
}

export class ChannelDuplex extends Duplex {
  readonly channel: number;
  readonly #dispatch: (e: ChannelEvent) => void;
  readonly #isTransient: (chunk: Uint8Array) => boolean;
  readonly #muxTakesTransient: () => boolean;
  /** Delivered bytes sitting in our read buffer, not yet reported drained. */
  #unreported = 0;
  #paused = false;
  #held: ((err?: Error | null) => void) | null = null;
  /** The peer takes no more: writes are accepted and dropped. */
  #writeShut = false;
  /** The mux has let go of the channel: no events go back to it. */
  #muxClosed = false;
  #ended = false;

  constructor(opts: ChannelDuplexOptions) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: opts.readableHighWaterMark ?? 256 * 1024,
      writableHighWaterMark: opts.writableHighWaterMark ?? 128 * 1024,
    });
    this.channel = opts.channel;
    this.#dispatch = opts.dispatch;
    this.#isTransient = opts.isTransient ?? (() => false);
    this.#muxTakesTransient = opts.muxTakesTransient ?? (() => false);
    this.once('end', () => {
      this.#ended = true;
      if (this.#muxClosed) this.destroy();
    });
  }

  // -- stream side ---------------------------------------------------------

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.#writeShut && !this.#muxClosed) {
      const transient = this.#isTransient(chunk);
      this.#dispatch({ kind: 'localData', channel: this.channel, bytes: chunk, transient });
    }
    if (this.#paused && !this.#writeShut && !this.#muxClosed) this.#held = cb;
    else cb();
  }

  /**
   * Whether a write made now reaches `_write` at once (nothing buffered in
   * the stream, no held callback) and the mux keeps no view of it: a chunk
   * of a shared read buffer may then be written without a copy.
   */
  takesNow(): boolean {
    return (
      !this.#paused &&
      this.writableLength === 0 &&
      this.writableCorked === 0 &&
      !this.destroyed &&
      this.#muxTakesTransient()
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.#muxClosed) this.#dispatch({ kind: 'localEof', channel: this.channel });
    cb();
  }

  override _read(): void {
    this.#report();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#release();
    if (!this.#muxClosed) {
      this.#muxClosed = true;
      this.#dispatch({ kind: 'localAbort', channel: this.channel });
    }
    cb(err);
  }

  #report(): void {
    if (this.#unreported === 0 || this.#muxClosed) return;
    const bytes = this.#unreported;
    this.#unreported = 0;
    this.#dispatch({ kind: 'localDrained', channel: this.channel, bytes });
  }

  #release(): void {
    const cb = this.#held;
    this.#held = null;
    cb?.();
  }

  // -- mux side ------------------------------------------------------------

  /** `deliver`: bytes from the peer. */
  deliver(bytes: Uint8Array): void {
    if (this.destroyed || this.readableEnded) return;
    this.#unreported += bytes.length;
    if (this.push(bytes)) this.#report();
  }

  pauseLocal(): void {
    this.#paused = true;
  }

  resumeLocal(): void {
    this.#paused = false;
    this.#release();
  }

  /** `stopLocalRead`: the peer takes no more; drop what we would send. */
  stopLocalRead(): void {
    this.#writeShut = true;
    this.#release();
  }

  /** `endLocal`: the peer sent EOF. */
  endLocal(): void {
    if (!this.destroyed && !this.readableEnded) this.push(null);
  }

  /** `closeLocal`: both directions are shut; close once the reader has everything. */
  closeLocal(): void {
    this.#muxClosed = true;
    this.#release();
    if (this.destroyed) return;
    this.endLocal();
    // Otherwise the 'end' listener destroys it once the reader has taken everything.
    if (this.#ended) this.destroy();
  }

  /** The whole mux session is over (`null`: we are shutting down on purpose, no error). */
  abortLocal(reason: string | null): void {
    this.#muxClosed = true;
    this.#release();
    this.destroy(reason === null ? undefined : new Error(reason));
  }
}

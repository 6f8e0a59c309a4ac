/**
 * Reusable write buffers for the client's mux pipe.
 *
 * The frames of one event-loop turn are copied into a slab as they are
 * made and the slab is written in one go; it comes back when the write's
 * callback says the pipe is done with it. Without it every turn's frames
 * were gathered as views and concatenated into a fresh buffer (a 256 KiB
 * allocation per flush in a bulk upload), and the views pinned the socket
 * reads they came from, so those could not be read into one shared buffer.
 */

export interface SlabPool {
  /** A slab of at least `bytes` (a pooled one when it fits). */
  readonly take: (bytes: number) => Buffer;
  /** A slab the pipe has finished with; kept for reuse if it is a pooled size. */
  readonly give: (slab: Buffer) => void;
  /** Slabs allocated so far (for tests). */
  readonly made: () => number;
}

export const makeSlabPool = (slabBytes: number, keep: number): SlabPool => {
  const free: Buffer[] = [];
  let made = 0;
  return {
    take: (bytes) => {
      if (bytes > slabBytes) {
        made++;
        return Buffer.allocUnsafeSlow(bytes);
      }
      const slab = free.pop();
      if (slab !== undefined) return slab;
      made++;
      return Buffer.allocUnsafeSlow(slabBytes);
    },
    give: (slab) => {
      if (slab.length === slabBytes && free.length < keep) free.push(slab);
    },
    made: () => made,
  };
};

/**
 * Keeps relayed Buffers from piling up as garbage.
 *
 * Every chunk a socket delivers is a fresh Buffer whose bytes live outside
 * V8's heap (and ssh2 makes one or two more per SSH packet). The Buffer
 * objects themselves are tiny, so the young generation fills slowly and V8
 * collects them rarely; it only counts external bytes towards a collection
 * after tens of MB. Under a bulk transfer that garbage was most of the peak
 * resident memory (docs/performance-log.md). A young-generation collection every
 * `every` bytes relayed bounds it; with a small young generation each one
 * takes a fraction of a millisecond, and the CPU per byte went down rather
 * than up (fewer full collections forced by external memory).
 *
 * V8's `gc` is taken once, without exposing it to any other code.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export type Gc = (options: { readonly type: 'minor' | 'major' }) => void;

let cached: Gc | null | undefined;

/** V8's collector, or null when it cannot be had. */
export const youngGc = (): Gc | null => {
  if (cached !== undefined) return cached;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    cached = typeof gc === 'function' ? (gc as Gc) : null;
  } catch {
    cached = null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
  return cached;
};

/** Bytes relayed between two young-generation collections. */
export const GC_EVERY_BYTES = 2 * 1024 * 1024;

/**
 * A counter to call with the size of every relayed chunk; it collects the
 * young generation each time `every` bytes have gone by (0: never).
 */
export const makeGcPacer = (
  every: number = GC_EVERY_BYTES,
  gc: Gc | null = every > 0 ? youngGc() : null,
): ((bytes: number) => void) => {
  if (gc === null || every <= 0) return () => {};
  let count = 0;
  return (bytes) => {
    count += bytes;
    if (count < every) return;
    count = 0;
    gc({ type: 'minor' });
  };
};

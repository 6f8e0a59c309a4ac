/**
 * A persistent (immutable) map from non-negative integer keys, for reducer
 * state keyed by connection or channel id.
 *
 * Copying a `Map` on every change costs O(n) time and garbage: with 1,000
 * open connections, every accept, open, EOF and close copied a 1,000-entry
 * table. Here `set` and `delete` copy only the path to the key in a 32-way
 * trie (a few 32-slot arrays) and share the rest with the previous version,
 * which stays valid and unchanged. Subtrees that become empty are dropped,
 * so ever-growing ids do not leave a trail of empty nodes.
 *
 * It is a `ReadonlyMap`, iterated in ascending key order. Values must not be
 * `undefined` (an empty slot).
 */

const BITS = 5;
const WIDTH = 1 << BITS;
const MASK = WIDTH - 1;

type Slot<V> = V | Node<V> | undefined;
type Node<V> = readonly Slot<V>[];

/** Largest key + 1 a trie of `shift` (levels * BITS - BITS) can hold. */
const capacity = (shift: number): number => 2 ** (shift + BITS);

/**
 * The slot of `key` at the level of `shift`. Ids fit 31 bits in practice,
 * where a shift is several times cheaper than the division (`**` and `/`
 * on doubles) that larger safe integers need.
 */
const slotOf = (key: number, shift: number): number =>
  key <= 0x7fffffff && shift < 31 ? (key >>> shift) & MASK : (key / 2 ** shift) & MASK;

const isEmpty = <V>(node: Node<V>): boolean => node.every((x) => x === undefined);

export class IntMap<V extends NonNullable<unknown> | null> implements ReadonlyMap<number, V> {
  private static readonly EMPTY = new IntMap<never>(undefined, 0, 0);

  /** The empty map. */
  static empty<V extends NonNullable<unknown> | null>(): IntMap<V> {
    return IntMap.EMPTY as IntMap<V>;
  }

  /** A map holding `entries` (later duplicates win). */
  static of<V extends NonNullable<unknown> | null>(
    entries: Iterable<readonly [number, V]>,
  ): IntMap<V> {
    let m = IntMap.empty<V>();
    for (const [k, v] of entries) m = m.set(k, v);
    return m;
  }

  /** Largest key + 1 this trie holds without growing. */
  private readonly limit: number;

  private constructor(
    private readonly root: Node<V> | undefined,
    /** Bit shift of the root level: 0 for a one-level trie. */
    private readonly shift: number,
    readonly size: number,
  ) {
    this.limit = capacity(shift);
  }

  get(key: number): V | undefined {
    if (this.root === undefined || !(key < this.limit) || !IntMap.validKey(key)) {
      return undefined;
    }
    let node: Node<V> = this.root;
    for (let shift = this.shift; shift > 0; shift -= BITS) {
      const next = node[slotOf(key, shift)] as Node<V> | undefined;
      if (next === undefined) return undefined;
      node = next;
    }
    return node[key & MASK] as V | undefined;
  }

  has(key: number): boolean {
    return this.get(key) !== undefined;
  }

  /** A map with `key` set to `value`; this one is unchanged. */
  set(key: number, value: V): IntMap<V> {
    if (!IntMap.validKey(key))
      throw new RangeError(`IntMap key must be a safe integer >= 0: ${key}`);
    let root = this.root;
    let shift = this.shift;
    // Grow upward until the key fits: the old root becomes slot 0.
    while (key >= capacity(shift)) {
      if (root !== undefined) {
        const up: Slot<V>[] = new Array(WIDTH).fill(undefined);
        up[0] = root;
        root = up;
      }
      shift += BITS;
    }
    const had = this.get(key) !== undefined;
    const newRoot = IntMap.put(root, shift, key, value);
    return new IntMap(newRoot, shift, had ? this.size : this.size + 1);
  }

  /** A map without `key`; this one when it has no such key. */
  delete(key: number): IntMap<V> {
    if (!this.has(key) || this.root === undefined) return this;
    const root = IntMap.remove(this.root, this.shift, key);
    return this.size === 1 || root === undefined
      ? IntMap.empty()
      : new IntMap(root, this.shift, this.size - 1);
  }

  /** The entry with the smallest key, if any (empty subtrees are dropped, so this is O(depth * 32)). */
  first(): [number, V] | undefined {
    let node = this.root;
    if (node === undefined) return undefined;
    let key = 0;
    for (let shift = this.shift; ; shift -= BITS) {
      const i = node.findIndex((x) => x !== undefined);
      if (i < 0) return undefined;
      key += i * 2 ** shift;
      if (shift === 0) return [key, node[i] as V];
      node = node[i] as Node<V>;
    }
  }

  *entries(): MapIterator<[number, V]> {
    if (this.root !== undefined) yield* IntMap.walk(this.root, this.shift, 0);
  }

  *keys(): MapIterator<number> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): MapIterator<[number, V]> {
    return this.entries();
  }

  forEach(callback: (value: V, key: number, map: ReadonlyMap<number, V>) => void): void {
    for (const [k, v] of this.entries()) callback(v, k, this);
  }

  private static validKey(key: number): boolean {
    return Number.isSafeInteger(key) && key >= 0;
  }

  private static put<V>(node: Node<V> | undefined, shift: number, key: number, value: V): Node<V> {
    const copy: Slot<V>[] = node === undefined ? new Array(WIDTH).fill(undefined) : node.slice();
    if (shift === 0) {
      copy[key & MASK] = value;
    } else {
      const i = slotOf(key, shift);
      copy[i] = IntMap.put(copy[i] as Node<V> | undefined, shift - BITS, key, value);
    }
    return copy;
  }

  private static remove<V>(node: Node<V>, shift: number, key: number): Node<V> | undefined {
    const copy = node.slice();
    if (shift === 0) {
      copy[key & MASK] = undefined;
    } else {
      const i = slotOf(key, shift);
      copy[i] = IntMap.remove(copy[i] as Node<V>, shift - BITS, key);
    }
    return isEmpty(copy) ? undefined : copy;
  }

  private static *walk<V>(node: Node<V>, shift: number, base: number): Generator<[number, V]> {
    for (let i = 0; i < WIDTH; i++) {
      const slot = node[i];
      if (slot === undefined) continue;
      if (shift === 0) yield [base + i, slot as V];
      else yield* IntMap.walk(slot as Node<V>, shift - BITS, base + i * 2 ** shift);
    }
  }
}

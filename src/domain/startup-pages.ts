/**
 * Which mappings of the Node runtime hold code and data only start-up used.
 *
 * Of a fresh client's resident memory, about 44 MB are pages of the `node`
 * binary: its dynamic symbol table and relocations (read by the dynamic
 * linker), bootstrap code and the read-only data V8's snapshot is built
 * from. About half is never touched again once the tunnel is up. The
 * kernel keeps such file pages mapped, and counted in the process's RSS,
 * until memory runs short. Unmapping them once (madvise MADV_DONTNEED) after
 * start-up leaves mapped what the tunnel uses: a page touched again comes
 * back from the page cache with a minor fault.
 *
 * Only a private, read-only mapping with no anonymous page may be dropped:
 * MADV_DONTNEED on a private mapping throws away copy-on-write pages and
 * maps the file's bytes again, so a RELRO segment (relocated, then made
 * read-only: `r--p` with `Anonymous: 8 kB`) would lose its relocations.
 * Such pages may also be swapped out, so `Swap:` must be 0 too. A mapping
 * whose `Anonymous:` or `Swap:` line is missing is never chosen.
 */

export interface PageRange {
  readonly start: bigint;
  readonly end: bigint;
  readonly path: string;
}

/** The runtime's own files: the node executable, or a shared libnode. */
export const isRuntimeFile =
  (execPath: string) =>
  (path: string): boolean =>
    path === execPath || /\/libnode\.so(\.\d+)*$/.test(path);

const HEADER = /^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][ps]) \S+ \S+ \S+\s*(.*)$/;
const PRIVATE_COPIES = /^(Anonymous|Swap):\s+(\d+) kB$/;

interface Candidate extends PageRange {
  readonly eligible: boolean;
  anonymousKb: number | null;
  swapKb: number | null;
}

/**
 * The ranges of `/proc/self/smaps` text that may be dropped: mappings of a
 * file `isRuntime` accepts, private, not writable, with `Anonymous: 0 kB`
 * and `Swap: 0 kB`.
 */
export const droppableRanges = (
  smaps: string,
  isRuntime: (path: string) => boolean,
): PageRange[] => {
  const all: Candidate[] = [];
  let current: Candidate | null = null;
  for (const line of smaps.split('\n')) {
    const header = HEADER.exec(line);
    if (header !== null) {
      const [, from = '', to = '', perms = '', rest = ''] = header;
      const path = rest.trim();
      current = {
        start: BigInt(`0x${from}`),
        end: BigInt(`0x${to}`),
        path,
        eligible: perms[1] === '-' && perms[3] === 'p' && isRuntime(path),
        anonymousKb: null,
        swapKb: null,
      };
      all.push(current);
      continue;
    }
    const copies = PRIVATE_COPIES.exec(line);
    if (copies === null || current === null) continue;
    if (copies[1] === 'Anonymous') current.anonymousKb = Number(copies[2]);
    else current.swapKb = Number(copies[2]);
  }
  return all
    .filter((c) => c.eligible && c.anonymousKb === 0 && c.swapKb === 0 && c.end > c.start)
    .map(({ start, end, path }) => ({ start, end, path }));
};

/** The `RssFile:` of `/proc/self/status` text, in kB (null when absent). */
export const rssFileKb = (status: string): number | null => {
  const m = /^RssFile:\s+(\d+) kB$/m.exec(status);
  return m === null ? null : Number(m[1]);
};

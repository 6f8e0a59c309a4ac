/**
 * Unmaps the pages of the Node runtime that only start-up used
 * (src/domain/startup-pages.ts says which and why), once the tunnel is up.
 * Never fatal: Left says why nothing was dropped.
 */
import { readFileSync, realpathSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { droppableRanges, isRuntimeFile, rssFileKb } from '../domain/startup-pages.js';
import { unixAddon } from './unix-native.js';

export interface Released {
  readonly ranges: number;
  /** Bytes of address space dropped (resident or not). */
  readonly mappedBytes: number;
  /** Resident file pages before and after, in kB (null: not reported). */
  readonly rssFileBeforeKb: number | null;
  readonly rssFileAfterKb: number | null;
}

const status = (): string => readFileSync('/proc/self/status', 'utf8');

export const releaseStartupPages = (): E.Either<string, Released> => {
  const addon = unixAddon();
  if (E.isLeft(addon)) return addon;
  try {
    const before = rssFileKb(status());
    const ranges = droppableRanges(
      readFileSync('/proc/self/smaps', 'utf8'),
      isRuntimeFile(realpathSync(process.execPath)),
    );
    let mappedBytes = 0;
    for (const r of ranges) {
      const length = Number(r.end - r.start);
      addon.right.dropPages(r.start, length);
      mappedBytes += length;
    }
    return E.right({
      ranges: ranges.length,
      mappedBytes,
      rssFileBeforeKb: before,
      rssFileAfterKb: rssFileKb(status()),
    });
  } catch (e) {
    return E.left((e as Error).message);
  }
};

/** One line for the log. */
export const describeReleased = (r: Released): string =>
  r.rssFileBeforeKb === null || r.rssFileAfterKb === null
    ? `unmapped ${r.ranges} start-up ranges of the node runtime`
    : `unmapped start-up pages of the node runtime: resident file pages ${Math.round(r.rssFileBeforeKb / 1024)} -> ${Math.round(r.rssFileAfterKb / 1024)} MB`;

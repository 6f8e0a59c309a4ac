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
    for (const r of ranges) addon.right.dropPages(r.start, Number(r.end - r.start));
    return E.right({
      ranges: ranges.length,
      rssFileBeforeKb: before,
      rssFileAfterKb: rssFileKb(status()),
    });
  } catch (e) {
    return E.left((e as Error).message);
  }
};

/** Releases the pages and says in one line for the log what became of them. */
export const releaseStartupPagesReport = (): string => {
  const released = releaseStartupPages();
  if (E.isLeft(released)) return `start-up pages stay mapped: ${released.left}`;
  const r = released.right;
  return r.rssFileBeforeKb === null || r.rssFileAfterKb === null
    ? `unmapped ${r.ranges} start-up ranges of the node runtime`
    : `unmapped start-up pages of the node runtime: resident file pages ${Math.round(r.rssFileBeforeKb / 1024)} -> ${Math.round(r.rssFileAfterKb / 1024)} MB`;
};

/**
 * Where the installed package is: the nearest directory up from this file
 * with a package.json. The same answer whether this code runs as
 * src/effects/*.ts (tests), dist/effects/*.js (tsc output) or a chunk of the
 * esbuild bundle in dist/bundle/, so files shipped with the package
 * (package.json, bin/, build/Release/, dist/helper.cjs) are found by their
 * path from the root rather than from the running file.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | null | undefined;

/** The package root, or undefined when no package.json is found above. */
export const packageRoot = (): string | undefined => {
  if (cached === undefined) {
    cached = null;
    let dir = dirname(fileURLToPath(import.meta.url));
    for (;;) {
      if (existsSync(join(dir, 'package.json'))) {
        cached = dir;
        break;
      }
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  return cached ?? undefined;
};

/** A path inside the package (relative to the working directory when no root is found). */
export const packagePath = (...parts: string[]): string => join(packageRoot() ?? '.', ...parts);

/**
 * Loading one of our N-API addons (build/Release/NAME.node, built by
 * `npm install`): once, lazily, as an Either whose Left says how to get it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { packageRoot } from './package-root.js';

const NOT_BUILT = 'native addon not built: run npm install; needs python3, make, g++';

/** A memoised loader of addon `name`, typed as `T` (the C file's exports). */
export const addonLoader = <T>(name: string): (() => E.Either<string, T>) => {
  let loaded: E.Either<string, T> | undefined;
  return () => {
    if (loaded !== undefined) return loaded;
    const path = `build/Release/${name}.node`;
    const root = packageRoot();
    const file = root === undefined ? undefined : join(root, path);
    if (file === undefined || !existsSync(file)) {
      loaded = E.left(`${NOT_BUILT} (looked for ${file ?? path})`);
      return loaded;
    }
    try {
      loaded = E.right(createRequire(import.meta.url)(file) as T);
    } catch (e) {
      loaded = E.left(`${NOT_BUILT} (loading ${file} failed: ${(e as Error).message})`);
    }
    return loaded;
  };
};

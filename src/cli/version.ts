/**
 * The program version, read from package.json. The relative path is the same
 * from src/cli (tests) and dist/cli (the built program).
 */
import { createRequire } from 'node:module';
import { isLeft } from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';

const PackageJsonC = t.type({ version: t.string });

const readVersion = (): string => {
  const decoded = PackageJsonC.decode(createRequire(import.meta.url)('../../package.json'));
  // package.json ships with the program, so a missing version is a packaging bug.
  if (isLeft(decoded)) throw new Error('package.json has no version string');
  return decoded.right.version;
};

export const VERSION: string = readVersion();

/** What `--version` prints. */
export const versionLine = (): string => `sshuttle-ts ${VERSION}`;

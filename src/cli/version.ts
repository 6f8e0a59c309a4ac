/**
 * The program version, read from the package's package.json (found from the
 * package root, so the same from src/cli under tests, dist/cli and the bundle).
 */
import { readFileSync } from 'node:fs';
import { isLeft } from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { packagePath } from '../effects/package-root.js';

const PackageJsonC = t.type({ version: t.string });

const readVersion = (): string => {
  const decoded = PackageJsonC.decode(
    JSON.parse(readFileSync(packagePath('package.json'), 'utf8')),
  );
  // package.json ships with the program, so a missing version is a packaging bug.
  if (isLeft(decoded)) throw new Error('package.json has no version string');
  return decoded.right.version;
};

export const VERSION: string = readVersion();

/** What `--version` prints. */
export const versionLine = (): string => `sshuttle-ts ${VERSION}`;

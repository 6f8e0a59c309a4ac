/**
 * `--user NAME` / `--group NAME` to numeric ids for the firewall's owner
 * match, through the system's name service (`getent`, so LDAP/sssd users
 * work too), as upstream's `pwd.getpwnam` / `grp.getgrnam`. A number is
 * taken as an id.
 */
import { spawnSync } from 'node:child_process';
import * as E from 'fp-ts/lib/Either.js';

/** The id in field 3 of a `getent passwd|group` line (`name:x:ID:...`), or null. */
export const idFromEntry = (line: string): number | null => {
  const id = line.split(':')[2];
  return id !== undefined && /^[0-9]{1,10}$/.test(id) && Number(id) < 2 ** 32 - 1
    ? Number(id)
    : null;
};

const lookupId = (db: 'passwd' | 'group', name: string): E.Either<string, number> => {
  if (/^[0-9]{1,10}$/.test(name) && Number(name) < 2 ** 32 - 1) return E.right(Number(name));
  const what = db === 'passwd' ? 'user' : 'group';
  const r = spawnSync('getent', [db, '--', name], { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined) return E.left(`cannot look up ${what} ${name}: ${r.error.message}`);
  const id = r.status === 0 ? idFromEntry(r.stdout.split('\n')[0] ?? '') : null;
  return id === null ? E.left(`no such local ${what}: ${name}`) : E.right(id);
};

export interface Owner {
  readonly uid: number | null;
  readonly gid: number | null;
}

/** Both ids (null where not asked for), or why one cannot be found. */
export const resolveOwner = (
  user: string | null,
  group: string | null,
): E.Either<string, Owner> => {
  const uid = user === null ? E.right(null) : lookupId('passwd', user);
  if (E.isLeft(uid)) return uid;
  const gid = group === null ? E.right(null) : lookupId('group', group);
  if (E.isLeft(gid)) return gid;
  return E.right({ uid: uid.right, gid: gid.right });
};

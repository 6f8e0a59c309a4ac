/**
 * Writes /etc/hosts for the firewall helper. A rename into place is atomic;
 * where /etc/hosts is a bind mount (containers, `ip netns exec`), rename
 * fails with EBUSY or EXDEV and the file is rewritten in place instead.
 */
import { chownSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { type HostName, mergeHosts } from '../../domain/hosts-file.js';

export const HOSTS_PATH = '/etc/hosts';

export const writeHosts = (port: number, entries: readonly HostName[], path = HOSTS_PATH): void => {
  const before = readFileSync(path, 'utf8');
  const after = mergeHosts(before, port, entries);
  if (after === before) return;
  const tmp = `${path}.${port}.tmp`;
  try {
    const st = statSync(path);
    writeFileSync(tmp, after, { mode: st.mode & 0o7777 });
    chownSync(tmp, st.uid, st.gid);
    renameSync(tmp, path);
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // it was never written
    }
    writeFileSync(path, after);
  }
};

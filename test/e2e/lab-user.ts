/**
 * A throwaway local user for end-to-end tests of the unprivileged client:
 * users are machine-wide, so each gets a unique name, its own directory with
 * a copy of the lab's ssh key, and is deleted again (with any sudoers file
 * installed for it and sudo's per-user state).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { run } from './lab-exec.js';

export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** A directory owned by the user: HOME, `key`, `ssh_config`. */
  readonly home: string;
  readonly sshConfig: string;
  /**
   * `setpriv ... -- env HOME=... argv...`: setpriv execs, so the user's
   * process is the one a terminal signals and whose exit code comes back
   * (runuser stays as a parent that re-raises a terminal's SIGINT on itself).
   */
  readonly argv: (argv: readonly string[]) => string[];
  /** Installs `text` as /etc/sudoers.d/<unique name> (checked by visudo first). */
  readonly installSudoers: (text: string) => Promise<void>;
  readonly removeSudoers: () => void;
  /** Deletes the user and everything made for it. */
  readonly remove: () => Promise<void>;
}

const must = async (argv: string[]): Promise<string> => {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
};

export const createTestUser = async (labSshKey: string): Promise<TestUser> => {
  const name = `sst${randomBytes(3).toString('hex')}`;
  await must(['useradd', '-M', '-N', '-d', '/nonexistent', '-s', '/usr/sbin/nologin', name]);
  const uid = Number((await must(['id', '-u', name])).trim());
  const gid = Number((await must(['id', '-g', name])).trim());
  const home = mkdtempSync(`/tmp/${name}-`);
  const key = join(home, 'key');
  copyFileSync(labSshKey, key);
  const sshConfig = join(home, 'ssh_config');
  writeFileSync(
    sshConfig,
    `Host *\n  IdentityFile ${key}\n  User root\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n`,
  );
  for (const f of [home, key, sshConfig]) chownSync(f, uid, gid);
  chmodSync(home, 0o700);
  chmodSync(key, 0o600);
  const sudoersFile = `/etc/sudoers.d/sshuttle-ts-test-${name}`;
  const removeSudoers = (): void => rmSync(sudoersFile, { force: true });
  return {
    name,
    uid,
    gid,
    home,
    sshConfig,
    argv: (argv) => [
      'setpriv',
      `--reuid=${uid}`,
      `--regid=${gid}`,
      '--init-groups',
      '--',
      'env',
      `HOME=${home}`,
      `USER=${name}`,
      `LOGNAME=${name}`,
      ...argv,
    ],
    installSudoers: async (text) => {
      const draft = join(home, 'sudoers.draft');
      writeFileSync(draft, text, { mode: 0o600 });
      await must(['visudo', '-cf', draft]);
      await must(['install', '-m', '0440', '-o', 'root', '-g', 'root', draft, sudoersFile]);
      rmSync(draft);
    },
    removeSudoers,
    remove: async () => {
      removeSudoers();
      // Whatever still runs as this throwaway user, by pid, until none is
      // left (userdel refuses a user with running processes).
      for (let i = 0; i < 50; i++) {
        const ps = await run(['ps', '-o', 'pid=', '-u', name]);
        const pids = ps.stdout
          .split('\n')
          .map((l) => Number(l.trim()))
          .filter((p) => p > 0);
        if (pids.length === 0) break;
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      await must(['userdel', name]);
      rmSync(home, { recursive: true, force: true });
      for (const d of ['/var/lib/sudo/lectured', '/run/sudo/ts'])
        rmSync(join(d, name), { force: true });
    },
  };
};

/**
 * sudo looks up this machine's name; inside the lab's client namespace DNS
 * does not answer, so the name goes into that namespace's own hosts file
 * (which lab.sh created and removes).
 */
export const hostsKnowsThisMachine = (clientNs: string): void => {
  writeFileSync(`/etc/netns/${clientNs}/hosts`, `127.0.1.1 ${hostname()}\n`, { flag: 'a' });
};

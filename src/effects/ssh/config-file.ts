/**
 * Reads OpenSSH client config files into lines for the pure resolver,
 * expanding `Include` (with `*`/`?` globs) in place, as ssh does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { type ConfigLine, tokenizeSshConfig } from '../../domain/ssh-config.js';
import { type SshError, sshError } from './types.js';

const MAX_INCLUDE_DEPTH = 16;
export const SYSTEM_SSH_CONFIG = '/etc/ssh/ssh_config';

/**
 * The lines of the user's config followed by the system config, as ssh
 * reads them. An explicit `--ssh-config FILE` replaces both (like `ssh -F`)
 * and must exist; the default `~/.ssh/config` may be missing.
 */
export const loadSshConfig = (
  path: string,
  home: string,
): E.Either<SshError, readonly ConfigLine[]> => {
  const defaultPath = `${home}/.ssh/config`;
  const expanded = expandTilde(path, home);
  const isDefault = path === '' || expanded === defaultPath;
  const file = isDefault ? defaultPath : expanded;
  const user = readConfig(file, { home, baseDir: `${home}/.ssh`, optional: isDefault }, 0);
  if (E.isLeft(user) || !isDefault) return user;
  const system = readConfig(SYSTEM_SSH_CONFIG, { home, baseDir: '/etc/ssh', optional: true }, 0);
  return E.isLeft(system) ? system : E.right([...user.right, ...system.right]);
};

interface ReadCtx {
  readonly home: string;
  /** Where relative Include paths start. */
  readonly baseDir: string;
  readonly optional: boolean;
}

const readConfig = (
  file: string,
  ctx: ReadCtx,
  depth: number,
): E.Either<SshError, readonly ConfigLine[]> => {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (ctx.optional && code === 'ENOENT') return E.right([]);
    return E.left(sshError('config', `cannot read ssh config ${file}: ${code ?? String(e)}`));
  }
  const tokens = tokenizeSshConfig(text, file);
  if (E.isLeft(tokens)) return E.left(sshError('config', `ssh config: ${tokens.left}`));
  const out: ConfigLine[] = [];
  for (const line of tokens.right) {
    if (line.keyword !== 'include') {
      out.push(line);
      continue;
    }
    if (depth >= MAX_INCLUDE_DEPTH) {
      return E.left(sshError('config', `${file}:${line.line}: Include nested too deeply`));
    }
    for (const arg of line.args) {
      const pattern0 = expandTilde(arg, ctx.home);
      const pattern = isAbsolute(pattern0) ? pattern0 : join(ctx.baseDir, pattern0);
      for (const f of globFiles(pattern)) {
        // Included files may be missing (a glob that matched a dangling name).
        const sub = readConfig(f, { ...ctx, optional: true }, depth + 1);
        if (E.isLeft(sub)) return sub;
        out.push(...sub.right);
      }
    }
  }
  return E.right(out);
};

const expandTilde = (p: string, home: string): string =>
  p === '~' || p.startsWith('~/') ? home + p.slice(1) : p;

/** Files matching a path whose components may hold `*`/`?`, sorted like glob(3). */
const globFiles = (pattern: string): string[] => {
  if (!/[*?]/.test(pattern)) return [pattern];
  const parts = pattern.split('/');
  let bases = [parts[0] === '' ? '/' : (parts[0] ?? '')];
  for (const part of parts.slice(1)) {
    if (part === '') continue;
    const next: string[] = [];
    for (const base of bases) {
      if (!/[*?]/.test(part)) {
        next.push(join(base, part));
        continue;
      }
      let names: string[];
      try {
        names = readdirSync(base).sort();
      } catch {
        continue;
      }
      for (const n of names) {
        if (n.startsWith('.') && !part.startsWith('.')) continue;
        if (matchFileName(n, part)) next.push(join(base, n));
      }
    }
    bases = next;
  }
  return bases;
};

// File names are case-sensitive, unlike the host-name matcher in the domain.
const matchFileName = (name: string, pattern: string): boolean =>
  new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  ).test(name);

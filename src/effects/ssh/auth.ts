/**
 * User authentication for one hop, as an ssh2 `authHandler`: the methods are
 * tried in OpenSSH's order (agent keys, identity files, keyboard-interactive,
 * password), each only if the server still offers it, prompting on the
 * terminal when there is one. Keeps a list of what was tried for the error.
 */
import { readFileSync } from 'node:fs';
import type { AnyAuthMethod, AuthHandlerMiddleware, ParsedKey } from 'ssh2';

import type { ResolvedHost } from '../../domain/ssh-config.js';
import { parseKey } from './ssh2-client.js';
import type { Prompter, SshLog } from './types.js';

type Method = 'none' | 'publickey' | 'keyboard-interactive' | 'password';

interface Step {
  readonly method: Method;
  readonly label: string;
  /** null = skip this step (key missing, passphrase not given, ...). */
  readonly make: () => Promise<AnyAuthMethod | null>;
}

export interface AuthSetup {
  readonly handler: AuthHandlerMiddleware;
  /** "tried agent, key ~/.ssh/id_ed25519, password; the server accepts publickey" */
  readonly summary: () => string;
}

export const makeAuth = (opts: {
  readonly hop: ResolvedHost;
  /** From `-r user:password@host`, for the target only. */
  readonly password: string | null;
  /** Resolved agent socket path, or null for no agent. */
  readonly agentSock: string | null;
  readonly prompt: Prompter | null;
  readonly log: SshLog;
}): AuthSetup => {
  const { hop, log } = opts;
  const username = hop.user;
  const prompt = hop.batchMode ? null : opts.prompt;
  const steps: Step[] = [
    { method: 'none', label: 'none', make: async () => ({ type: 'none', username }) },
  ];

  if (hop.pubkeyAuthentication) {
    // IdentitiesOnly: only the configured files, never whatever the agent holds.
    if (opts.agentSock !== null && !hop.identitiesOnly) {
      const agent = opts.agentSock;
      steps.push({
        method: 'publickey',
        label: 'agent',
        make: async () => ({ type: 'agent', username, agent }),
      });
    }
    for (const f of hop.identityFiles) {
      steps.push({
        method: 'publickey',
        label: `key ${f.path}`,
        make: async () => {
          const key = await loadKey(f.path, f.explicit, prompt, log);
          return key === null ? null : { type: 'publickey', username, key };
        },
      });
    }
  }

  let failedPassword = false;
  const passwordPrompt = (): string =>
    `${failedPassword ? 'Permission denied, please try again.\n' : ''}${username}@${hop.hostName}'s password: `;

  if (hop.kbdInteractiveAuthentication && (prompt !== null || opts.password !== null)) {
    steps.push({
      method: 'keyboard-interactive',
      label: 'keyboard-interactive',
      make: async () => ({
        type: 'keyboard-interactive',
        username,
        prompt: (name, instructions, _lang, prompts, finish) => {
          void answerKbd(name, instructions, prompts, prompt, opts.password).then(finish);
        },
      }),
    });
  }
  if (hop.passwordAuthentication) {
    const given = opts.password;
    if (given !== null) {
      steps.push({
        method: 'password',
        label: 'password (from the command line)',
        make: async () => ({ type: 'password', username, password: given }),
      });
    }
    if (prompt !== null) {
      for (let i = 0; i < hop.numberOfPasswordPrompts; i++) {
        steps.push({
          method: 'password',
          label: 'password',
          make: async () => {
            const pw = await prompt.readLine(passwordPrompt(), { secret: true });
            return pw === null ? null : { type: 'password', username, password: pw };
          },
        });
      }
    }
  }

  const tried: string[] = [];
  let serverMethods: readonly string[] | null = null;
  let next = 0;
  let last: Method | null = null;

  const handler: AuthHandlerMiddleware = (methodsLeft, _partial, callback) => {
    // ssh2 passes null on the first call (types say otherwise).
    const offered = (methodsLeft as readonly string[] | null) ?? null;
    if (offered !== null) serverMethods = offered;
    if (last === 'password') failedPassword = true;
    void (async () => {
      while (next < steps.length) {
        const step = steps[next++]!;
        if (offered !== null && !offered.includes(step.method)) continue;
        let method: AnyAuthMethod | null;
        try {
          method = await step.make();
        } catch (e) {
          log('warn', `skipping ${step.label}: ${String(e)}`);
          continue;
        }
        if (method === null) continue;
        if (step.method !== 'none') tried.push(step.label);
        log('debug', `ssh auth: trying ${step.label}`, { host: hop.hostName, user: username });
        last = step.method;
        callback(method);
        return;
      }
      callback(false as unknown as AnyAuthMethod);
    })();
  };

  const summary = (): string => {
    const t = tried.length === 0 ? 'nothing that could be tried' : [...new Set(tried)].join(', ');
    const s =
      serverMethods === null ? '' : `; the server accepts ${serverMethods.join(', ') || 'nothing'}`;
    const wantsSecret =
      serverMethods?.some((m) => m === 'password' || m === 'keyboard-interactive') === true;
    const hint =
      wantsSecret && prompt === null && opts.password === null
        ? '; there is no terminal to ask for a password'
        : '';
    return `tried ${t}${s}${hint}`;
  };

  return { handler, summary };
};

/** Reads and parses a private key, asking for its passphrase when it is encrypted. */
const loadKey = async (
  path: string,
  explicit: boolean,
  prompt: Prompter | null,
  log: SshLog,
): Promise<ParsedKey | null> => {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    log(explicit ? 'warn' : 'debug', `identity file ${path} not readable: ${code ?? String(e)}`);
    return null;
  }
  let parsed = firstKey(parseKey(data));
  if (!(parsed instanceof Error)) return parsed;
  if (!/no passphrase given/i.test(parsed.message)) {
    log('warn', `cannot use identity file ${path}: ${parsed.message}`);
    return null;
  }
  if (prompt === null) {
    log('info', `skipping encrypted key ${path}: no terminal to ask for its passphrase`);
    return null;
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    const pass = await prompt.readLine(`Enter passphrase for key '${path}': `, { secret: true });
    if (pass === null || pass === '') return null;
    parsed = firstKey(parseKey(data, pass));
    if (!(parsed instanceof Error)) return parsed;
    log('warn', `bad passphrase for ${path}`);
  }
  return null;
};

const firstKey = (k: ParsedKey | ParsedKey[] | Error): ParsedKey | Error =>
  Array.isArray(k) ? (k[0] ?? new Error('no key in file')) : k;

/** Answers keyboard-interactive prompts from the terminal, or a given password. */
const answerKbd = async (
  name: string,
  instructions: string,
  prompts: readonly { prompt: string; echo?: boolean }[],
  prompt: Prompter | null,
  password: string | null,
): Promise<string[]> => {
  if (prompt === null) {
    // Servers using PAM ask "Password:" here; a given password answers it.
    return prompts.map((p) => (p.echo === true ? '' : (password ?? '')));
  }
  const header = [name, instructions].filter((s) => s.trim() !== '').join('\n');
  const answers: string[] = [];
  for (let i = 0; i < prompts.length; i++) {
    const p = prompts[i]!;
    const text = i === 0 && header !== '' ? `${header}\n${p.prompt}` : p.prompt;
    answers.push((await prompt.readLine(text, { secret: p.echo !== true })) ?? '');
  }
  return answers;
};

/**
 * The sshuttle-compatible command line: argv (after `SSHUTTLE_ARGS` words and
 * `@file` arguments) becomes one validated Command, or one usage error line.
 * Pure apart from the injected file reader.
 */
import * as E from 'fp-ts/lib/Either.js';
import { PathReporter } from 'io-ts/lib/PathReporter.js';
import { type Config, ConfigC } from '../domain/config.js';
import { parseRemote } from '../domain/remote-syntax.js';
import { parseSubnetSpec } from '../domain/subnet-syntax.js';
import { helpText } from './help.js';
import { defaultConfig } from './options-defaults.js';
import { argsFromArgFile, entriesFromListFile } from './options-files.js';
import { shellWords } from './options-shell-words.js';
import {
  OPTIONS,
  type OptionDef,
  type OptionName,
  optionByLong,
  optionByShort,
} from './options-table.js';
import {
  parseChoice,
  parseInteger,
  parseListen,
  parseNamespace,
  parseNsHosts,
  parseSeedHosts,
  parseTmark,
  parseToNs,
} from './options-values.js';

// ---------------------------------------------------------------------------
// public types
// ---------------------------------------------------------------------------

/** A command line that cannot run; `message` is one line naming the input. */
export interface UsageError {
  readonly message: string;
}

export type Command =
  | { readonly kind: 'run'; readonly config: Config }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'version' }
  | { readonly kind: 'replay'; readonly file: string; readonly verbose: number }
  | { readonly kind: 'status'; readonly which: number | null; readonly json: boolean }
  | { readonly kind: 'firewall'; readonly argv: readonly string[] };

export interface CommandLineEnv {
  readonly SSHUTTLE_ARGS?: string | undefined;
  readonly HOME?: string | undefined;
}

/** Reads a text file; Left is a short reason such as `no such file or directory`. */
export type ReadFile = (path: string) => E.Either<string, string>;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

type Parsed<T> = E.Either<string, T>;

const quoted = (text: string): string => JSON.stringify(text);

/** `@file` nesting limit, so a file that includes itself fails instead of looping. */
const MAX_ARG_FILE_DEPTH = 10;

/** Replaces each `@path` before `--` by the arguments in that file, recursively. */
const expandArgFiles = (
  args: readonly string[],
  readFile: ReadFile,
  depth: number,
): Parsed<string[]> => {
  const out: string[] = [];
  let optionsEnded = false;
  for (const arg of args) {
    if (arg === '--') optionsEnded = true;
    if (optionsEnded || !arg.startsWith('@')) {
      out.push(arg);
      continue;
    }
    const path = arg.slice(1);
    if (path === '') return E.left('missing file name after "@"');
    if (depth >= MAX_ARG_FILE_DEPTH) {
      return E.left(`argument file ${quoted(path)} is nested too deeply (does it include itself?)`);
    }
    const content = readFile(path);
    if (E.isLeft(content)) {
      return E.left(`cannot read argument file ${quoted(path)}: ${content.left}`);
    }
    const nested = expandArgFiles(argsFromArgFile(content.right), readFile, depth + 1);
    if (E.isLeft(nested)) return nested;
    out.push(...nested.right);
  }
  return E.right(out);
};

/** Subnets listed in a `-X`/`-s` file. */
const subnetsFromFile = (
  option: string,
  path: string,
  readFile: ReadFile,
): Parsed<Config['subnets']> => {
  const content = readFile(path);
  if (E.isLeft(content)) {
    return E.left(`cannot read ${option} file ${quoted(path)}: ${content.left}`);
  }
  const specs: Config['subnets'] = [];
  for (const entry of entriesFromListFile(content.right)) {
    const spec = parseSubnetSpec(entry.text);
    if (E.isLeft(spec))
      return E.left(`${option} file ${quoted(path)} line ${entry.line}: ${spec.left}`);
    specs.push(spec.right);
  }
  return E.right(specs);
};

/**
 * The option a `--name` refers to: an exact long name, or like argparse an
 * unambiguous prefix of one (`--exclude-f` for `--exclude-from`).
 */
const resolveLong = (name: string): Parsed<OptionDef> => {
  const exact = optionByLong(name);
  if (exact !== undefined) return E.right(exact);
  const candidates = (OPTIONS as readonly OptionDef[]).filter((o) => o.long.startsWith(name));
  const [only, ...others] = candidates;
  if (only !== undefined && others.length === 0) return E.right(only);
  if (only !== undefined) {
    const names = candidates.map((o) => `--${o.long}`).join(', ');
    return E.left(`ambiguous option ${quoted(`--${name}`)}: could be ${names}`);
  }
  return E.left(`unknown option ${quoted(`--${name}`)} (see sshuttle-ts --help)`);
};

/** Would this token be read as an option rather than as a value? */
const looksLikeOption = (token: string): boolean => token.startsWith('-') && token.length > 1;

// ---------------------------------------------------------------------------
// per-option effects
// ---------------------------------------------------------------------------

type Handler = (config: Config, value: string, readFile: ReadFile) => Parsed<Config>;

const set =
  (update: (config: Config, value: string) => Config): Handler =>
  (config, value) =>
    E.right(update(config, value));

const setParsed =
  <T>(
    parse: (value: string) => Parsed<T>,
    update: (config: Config, parsed: T) => Config,
  ): Handler =>
  (config, value) =>
    E.map((parsed: T) => update(config, parsed))(parse(value));

const optional = (value: string): string | null => (value === '' ? null : value);

/** Options that end parsing or are refused are handled by the parser loop itself. */
type SpecialOption = 'help' | 'version' | 'firewall' | 'hostwatch';

/**
 * What each option does to the Config. Scalars: the last one wins (so the
 * command line overrides `SSHUTTLE_ARGS` and `@file`s); lists of subnets grow.
 */
const HANDLERS: Record<Exclude<OptionName, SpecialOption>, Handler> = {
  remote: setParsed(parseRemote, (c, remote) => ({ ...c, remote })),
  'ssh-cmd': set((c, v) => ({ ...c, sshCmd: optional(v) })),
  'ssh-config': set((c, v) => ({ ...c, sshConfig: v })),
  python: set((c, v) => ({ ...c, python: optional(v) })),
  'remote-shell': setParsed(
    (v) => parseChoice('--remote-shell', v, ['cmd', 'powershell'] as const),
    (c, remoteShell) => ({ ...c, remoteShell }),
  ),
  'no-cmd-delimiter': set((c) => ({ ...c, noCmdDelimiter: true })),
  exclude: setParsed(parseSubnetSpec, (c, spec) => ({ ...c, excludes: [...c.excludes, spec] })),
  'exclude-from': (c, v, readFile) =>
    E.map((specs: Config['excludes']) => ({ ...c, excludes: [...c.excludes, ...specs] }))(
      subnetsFromFile('--exclude-from', v, readFile),
    ),
  subnets: (c, v, readFile) =>
    E.map((specs: Config['subnets']) => ({ ...c, subnets: [...c.subnets, ...specs] }))(
      subnetsFromFile('--subnets', v, readFile),
    ),
  'auto-nets': set((c) => ({ ...c, autoNets: true })),
  'disable-ipv6': set((c) => ({ ...c, disableIpv6: true })),
  user: set((c, v) => ({ ...c, user: optional(v) })),
  group: set((c, v) => ({ ...c, group: optional(v) })),
  dns: set((c) => ({ ...c, dns: true })),
  'ns-hosts': setParsed(parseNsHosts, (c, nsHosts) => ({ ...c, nsHosts })),
  'to-ns': setParsed(parseToNs, (c, toNs) => ({ ...c, toNs })),
  'auto-hosts': set((c) => ({ ...c, autoHosts: true })),
  'seed-hosts': setParsed(parseSeedHosts, (c, seedHosts) => ({ ...c, seedHosts })),
  method: setParsed(
    (v) =>
      parseChoice('--method', v, [
        'auto',
        'nft',
        'nat',
        'tproxy',
        'nft-tproxy',
        'pf',
        'ipfw',
      ] as const),
    (c, method) => ({ ...c, method }),
  ),
  listen: setParsed(parseListen, (c, listen) => ({ ...c, listen })),
  tmark: setParsed(parseTmark, (c, tmark) => ({ ...c, tmark })),
  namespace: setParsed(parseNamespace, (c, namespace) => ({ ...c, namespace })),
  'namespace-pid': setParsed(
    (v) => parseInteger('--namespace-pid', v, 1, 2 ** 31 - 1),
    (c, namespacePid) => ({ ...c, namespacePid }),
  ),
  transport: setParsed(
    (v) => parseChoice('--transport', v, ['direct', 'helper', 'auto'] as const),
    (c, transport) => ({ ...c, transport }),
  ),
  'helper-cmd': set((c, v) => ({ ...c, helperCmd: optional(v) })),
  node: set((c, v) => ({ ...c, node: v })),
  'no-reconnect': set((c) => ({ ...c, noReconnect: true })),
  'no-latency-control': set((c) => ({ ...c, latencyControl: false })),
  'latency-buffer-size': setParsed(
    (v) => parseInteger('--latency-buffer-size', v, 1, 2 ** 31 - 1),
    (c, latencyBufferSize) => ({ ...c, latencyBufferSize }),
  ),
  // Channel numbers are 16 bits on the wire.
  wrap: setParsed(
    (v) => parseInteger('--wrap', v, 1, 65535),
    (c, wrap) => ({ ...c, wrap }),
  ),
  daemon: set((c) => ({ ...c, daemon: true })),
  syslog: set((c) => ({ ...c, syslog: true })),
  pidfile: set((c, v) => ({ ...c, pidfile: v })),
  'sudoers-no-modify': set((c) => ({ ...c, sudoersNoModify: true })),
  'sudoers-user': set((c, v) => ({ ...c, sudoersUser: optional(v) })),
  'no-sudo-pythonpath': set((c) => ({ ...c, noSudoPythonpath: true })),
  verbose: set((c) => ({ ...c, verbose: c.verbose + 1 })),
  record: set((c, v) => ({ ...c, record: optional(v) })),
  'record-payload': set((c) => ({ ...c, recordPayload: true })),
};

const EMPTY_VALUE_FORBIDDEN = new Set(['ssh-config', 'node', 'pidfile']);

// ---------------------------------------------------------------------------
// the option loop
// ---------------------------------------------------------------------------

/** One option occurrence: which option, its value (null for flags), and how it was spelled. */
interface Occurrence {
  readonly def: OptionDef;
  readonly value: string | null;
  readonly spelled: string;
}

type LoopResult = { readonly kind: 'done'; readonly config: Config } | Command;

const applyOccurrence = (
  config: Config,
  { def, value, spelled }: Occurrence,
  readFile: ReadFile,
): Parsed<Config | Command> => {
  const name = def.long as OptionName;
  switch (name) {
    case 'help':
      return E.right({ kind: 'help', text: helpText() });
    case 'version':
      return E.right({ kind: 'version' });
    case 'firewall':
      return E.left('--firewall is internal and must be given on the command line itself');
    case 'hostwatch':
      return E.left('--hostwatch is not implemented (sshuttle-ts has no host watcher process)');
    default: {
      if (value !== null && value.trim() === '' && EMPTY_VALUE_FORBIDDEN.has(name)) {
        return E.left(`option ${spelled} needs a non-empty ${def.metavar ?? 'value'}`);
      }
      return HANDLERS[name](config, value ?? '', readFile);
    }
  }
};

const isCommand = (x: Config | Command): x is Command => 'kind' in x;

/** Walks the expanded arguments, applying options and subnets in order. */
const runOptionLoop = (
  args: readonly string[],
  home: string | undefined,
  readFile: ReadFile,
): Parsed<LoopResult> => {
  let config = defaultConfig(home);
  let optionsEnded = false;
  const apply = (occurrence: Occurrence): Parsed<Command | null> => {
    const next = applyOccurrence(config, occurrence, readFile);
    if (E.isLeft(next)) return next;
    if (isCommand(next.right)) return E.right(next.right);
    config = next.right;
    return E.right(null);
  };
  const missingValue = (spelled: string, def: OptionDef) =>
    E.left(
      `option ${spelled} needs a value (${def.metavar}); write ${spelled}=VALUE if it starts with "-"`,
    );

  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    let result: Parsed<Command | null>;
    if (optionsEnded || arg === '-' || !arg.startsWith('-')) {
      const spec = parseSubnetSpec(arg);
      if (E.isLeft(spec)) return spec;
      config = { ...config, subnets: [...config.subnets, spec.right] };
      continue;
    }
    if (arg === '--') {
      optionsEnded = true;
      continue;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const def = resolveLong(name);
      if (E.isLeft(def)) return def;
      const spelled = `--${def.right.long}`;
      if (def.right.metavar === null) {
        if (eq >= 0) return E.left(`option ${spelled} takes no value (got ${quoted(arg)})`);
        result = apply({ def: def.right, value: null, spelled });
      } else if (eq >= 0) {
        result = apply({ def: def.right, value: arg.slice(eq + 1), spelled });
      } else {
        const value = args[i + 1];
        if (value === undefined || looksLikeOption(value)) return missingValue(spelled, def.right);
        i++;
        result = apply({ def: def.right, value, spelled });
      }
    } else {
      // A cluster of short options: `-vvN`, `-rhost`, `-r host`, `-vr host`.
      result = E.right(null);
      for (let j = 1; j < arg.length; j++) {
        const letter = arg[j] as string;
        const def = optionByShort(letter);
        if (def === undefined) {
          const where = arg.length > 2 ? ` in ${quoted(arg)}` : '';
          return E.left(`unknown option ${quoted(`-${letter}`)}${where} (see sshuttle-ts --help)`);
        }
        const spelled = `-${letter}`;
        if (def.metavar === null) {
          result = apply({ def, value: null, spelled });
        } else {
          const attached = arg.slice(j + 1);
          let value: string;
          if (attached !== '') {
            // argparse reads `-r=host` as `-r host`.
            value = attached.startsWith('=') ? attached.slice(1) : attached;
          } else {
            const next = args[i + 1];
            if (next === undefined || looksLikeOption(next)) return missingValue(spelled, def);
            i++;
            value = next;
          }
          result = apply({ def, value, spelled });
          break;
        }
        if (E.isLeft(result) || result.right !== null) break;
      }
    }
    if (E.isLeft(result)) return result;
    if (result.right !== null) return E.right(result.right);
  }
  return E.right({ kind: 'done', config });
};

// ---------------------------------------------------------------------------
// whole-config checks
// ---------------------------------------------------------------------------

const validate = (parsed: Config): Parsed<Config> => {
  // -D implies --syslog, as upstream.
  const config = parsed.daemon ? { ...parsed, syslog: true } : parsed;
  if (config.namespace !== null && config.namespacePid !== null) {
    return E.left('--namespace and --namespace-pid cannot be used together');
  }
  if (config.recordPayload && config.record === null) {
    return E.left('--record-payload needs --record FILE');
  }
  // --sudoers-no-modify only prints a snippet, so it needs no target.
  if (!config.sudoersNoModify) {
    if (config.remote === null) {
      return E.left(
        'missing -r/--remote: name the ssh server to tunnel through, e.g. -r user@host',
      );
    }
    if (config.subnets.length === 0 && !config.autoNets) {
      return E.left('no subnets to capture: give at least one subnet (e.g. 0/0), -s FILE, or -N');
    }
  }
  const decoded = ConfigC.decode(config);
  if (E.isLeft(decoded)) {
    return E.left(`invalid configuration: ${PathReporter.report(decoded).join('; ')}`);
  }
  return E.right(decoded.right);
};

// ---------------------------------------------------------------------------
// special first words and internal modes
// ---------------------------------------------------------------------------

/** Does this option take a value (for scanning argv without parsing it)? */
const takesValueLong = (arg: string): boolean =>
  !arg.includes('=') && (optionByLong(arg.slice(2))?.metavar ?? null) !== null;

/**
 * `--firewall` on the real command line: the privileged manager gets the
 * command line without that word (e.g. `--method nft -v`). `SSHUTTLE_ARGS`
 * and `@file`s are not applied, since they describe a client run.
 */
const firewallArgv = (argv: readonly string[]): readonly string[] | null => {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') return null;
    if (arg === '--firewall') return [...argv.slice(0, i), ...argv.slice(i + 1)];
    if (arg.startsWith('--')) {
      if (takesValueLong(arg)) i++;
    } else if (arg.startsWith('-') && arg.length > 1) {
      // In a short cluster, a value-taking letter eats the rest or the next word.
      for (let j = 1; j < arg.length; j++) {
        if ((optionByShort(arg[j] as string)?.metavar ?? null) !== null) {
          if (j === arg.length - 1) i++;
          break;
        }
      }
    }
  }
  return null;
};

const REPLAY_USAGE = 'usage: sshuttle-ts replay FILE [-v]';

/** `sshuttle-ts replay FILE [-v...]`. */
const parseReplay = (args: readonly string[]): Parsed<Command> => {
  let verbose = 0;
  const files: string[] = [];
  let optionsEnded = false;
  for (const arg of args) {
    if (optionsEnded || arg === '-' || !arg.startsWith('-')) files.push(arg);
    else if (arg === '--') optionsEnded = true;
    else if (arg === '--verbose') verbose++;
    else if (arg === '-h' || arg === '--help') return E.right({ kind: 'help', text: helpText() });
    else if (/^-v+$/.test(arg)) verbose += arg.length - 1;
    else return E.left(`replay: unknown option ${quoted(arg)} (${REPLAY_USAGE})`);
  }
  const [file, ...extra] = files;
  if (file === undefined) return E.left(`replay: missing FILE (${REPLAY_USAGE})`);
  if (extra.length > 0)
    return E.left(`replay: unexpected argument ${quoted(extra[0] ?? '')} (${REPLAY_USAGE})`);
  return E.right({ kind: 'replay', file, verbose });
};

const STATUS_USAGE = 'usage: sshuttle-ts status [PID|PORT] [--json]';

/** `sshuttle-ts status [PID|PORT] [--json]`. */
const parseStatus = (args: readonly string[]): Parsed<Command> => {
  let json = false;
  let which: number | null = null;
  for (const arg of args) {
    if (arg === '--json') json = true;
    else if (arg === '-h' || arg === '--help') return E.right({ kind: 'help', text: helpText() });
    else if (/^[1-9]\d{0,9}$/.test(arg) && which === null) which = Number(arg);
    else return E.left(`status: unexpected argument ${quoted(arg)} (${STATUS_USAGE})`);
  }
  return E.right({ kind: 'status', which, json });
};

// ---------------------------------------------------------------------------
// entry
// ---------------------------------------------------------------------------

const parse = (
  argv: readonly string[],
  env: CommandLineEnv,
  readFile: ReadFile,
): Parsed<Command> => {
  if (argv[0] === 'replay') return parseReplay(argv.slice(1));
  if (argv[0] === 'status') return parseStatus(argv.slice(1));
  const firewall = firewallArgv(argv);
  if (firewall !== null) return E.right({ kind: 'firewall', argv: firewall });

  const envWords = shellWords(env.SSHUTTLE_ARGS ?? '');
  if (E.isLeft(envWords)) return E.left(`cannot split SSHUTTLE_ARGS: ${envWords.left}`);
  const expanded = expandArgFiles([...envWords.right, ...argv], readFile, 0);
  if (E.isLeft(expanded)) return expanded;

  const loop = runOptionLoop(expanded.right, env.HOME, readFile);
  if (E.isLeft(loop)) return loop;
  if (loop.right.kind !== 'done') return E.right(loop.right);
  return E.map((config: Config): Command => ({ kind: 'run', config }))(validate(loop.right.config));
};

/**
 * Parses a command line. `SSHUTTLE_ARGS` words come first so the real command
 * line wins; `@file` arguments are replaced by their lines; a first word of
 * `replay` selects the replay tool; `--firewall` selects the firewall manager.
 */
export const parseCommandLine = (
  argv: readonly string[],
  env: CommandLineEnv,
  readFile: ReadFile,
): E.Either<UsageError, Command> =>
  E.mapLeft((message: string): UsageError => ({ message }))(parse(argv, env, readFile));

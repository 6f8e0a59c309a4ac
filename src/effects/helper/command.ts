/**
 * The command lines that start the remote helper (pure string building).
 *
 * Upload, as sshuttle does it with Python: the remote command is a tiny
 * `node -e` loader that reads exactly N bytes of JavaScript from stdin and
 * runs them as a CommonJS module; the client writes the bundle right after
 * starting it, then speaks frames on the same stream. Nothing is written to
 * the server's disk.
 */

/** Quotes `word` for a POSIX shell as Python's `shlex.quote` does. */
export const shq = (word: string): string =>
  word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)
    ? word
    : `'${word.replaceAll("'", `'"'"'`)}'`;

/**
 * The loader run by `node -e`: reads `n` bytes from fd 0 (blocking reads;
 * it sleeps on EAGAIN in case the fd is non-blocking), then compiles them as
 * a module. Exit 97 when stdin ends early, as sshuttle's loader does.
 */
export const loaderScript = (n: number): string =>
  [
    `const f=require("fs"),n=${n},b=Buffer.allocUnsafe(n);let o=0;`,
    'while(o<n){let r;try{r=f.readSync(0,b,o,n-o,null)}catch(e){',
    'if(e.code==="EAGAIN"){Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,5);continue}throw e}',
    'if(r===0){process.stderr.write("sshuttle-ts helper: stdin ended during the upload\\n");process.exit(97)}o+=r}',
    'const M=require("module"),m=new M("sshuttle-ts-helper");m.filename="/sshuttle-ts-helper.cjs";',
    'm._compile(b.toString("utf8"),m.filename)',
  ].join('');

/** What the helper is told on its command line (`key=value` words, no dashes for node to grab). */
export interface HelperOptions {
  readonly verbose: number;
  readonly latencyControl: boolean;
  readonly latencyBufferSize: number;
  /** `--to-ns`: where the helper sends DNS requests instead of its resolv.conf's first server. */
  readonly toNs?: { readonly ip: string; readonly port: number } | null;
  /** `-N`: the helper sends the server's routes in ROUTES (else an empty ROUTES). */
  readonly autoNets?: boolean;
  /** `-H`: HOST_REQ also reads the server's tables, not just the seeds. */
  readonly autoHosts?: boolean;
}

export const helperArgs = (o: HelperOptions): string[] => [
  `v=${o.verbose}`,
  `lc=${o.latencyControl ? 1 : 0}`,
  `lbs=${o.latencyBufferSize}`,
  ...(o.toNs === undefined || o.toNs === null ? [] : [`ns=${o.toNs.ip}@${o.toNs.port}`]),
  ...(o.autoNets === true ? ['an=1'] : []),
  ...(o.autoHosts === true ? ['ah=1'] : []),
];

/** Parses {@link helperArgs} back (unknown words are ignored). */
export const parseHelperArgs = (argv: readonly string[]): HelperOptions => {
  const kv = new Map<string, string>();
  for (const a of argv) {
    const m = /^([a-z]+)=(.*)$/.exec(a);
    if (m !== null) kv.set(m[1]!, m[2]!);
  }
  const num = (k: string, d: number): number => {
    const v = Number(kv.get(k));
    return Number.isFinite(v) && kv.has(k) ? v : d;
  };
  const ns = /^(.+)@(\d+)$/.exec(kv.get('ns') ?? '');
  return {
    verbose: num('v', 0),
    latencyControl: num('lc', 1) !== 0,
    latencyBufferSize: num('lbs', 32768),
    toNs: ns === null ? null : { ip: ns[1]!, port: Number(ns[2]) },
    autoNets: num('an', 0) !== 0,
    autoHosts: num('ah', 0) !== 0,
  };
};

/**
 * glibc settings for the helper, unless the server's environment has its
 * own: at most two malloc arenas (as the client), and freed memory kept
 * for reuse up to 8 MiB instead of given back to the kernel at once. A
 * relay frees and allocates 64 KiB buffers all the time; with glibc's
 * defaults the helper refaulted 14,000-41,000 pages per 600 MB uploaded
 * and its CPU time varied with them (docs/performance-log.md).
 */
export const HELPER_MALLOC_ENV: readonly (readonly [string, string])[] = [
  ['MALLOC_ARENA_MAX', '2'],
  ['MALLOC_TRIM_THRESHOLD_', String(8 * 1024 * 1024)],
];

/**
 * The size asked for the helper's stdin pipe (Linux `F_SETPIPE_SZ`; 1 MiB is
 * the default `fs.pipe-max-size` an unprivileged user may ask for). sshd
 * writes what the client uploads into that pipe, and with the default 64 KiB
 * it blocks on a full pipe every 64 KiB: uploads over the helper went 10-15%
 * faster with 1 MiB (docs/performance-log.md). sshd's window for the channel (2
 * MiB) bounds what is in flight either way, so bytes move from sshd's buffer
 * into the pipe and no queue is added. Only stdin: the same on stdout made a
 * download's queue ahead of small answers twice as long (the helper's pipe
 * cap cannot see bytes in the kernel's pipe).
 */
export const HELPER_STDIN_PIPE_BYTES = 1024 * 1024;

/**
 * Grows the pipe on fd 0 before node starts. Node has no `fcntl`, so perl
 * (essential on Debian, a few ms) does it on the shared pipe, or python3
 * where there is no perl (tens of ms). Where both or the call are missing
 * (another OS, a socket, a lower limit) nothing happens and nothing is said.
 */
const F_SETPIPE_SZ = 1031;
const growStdinPipe =
  `{ perl -e "fcntl(STDIN,${F_SETPIPE_SZ},${HELPER_STDIN_PIPE_BYTES})" || ` +
  `python3 -c "import fcntl; fcntl.fcntl(0,${F_SETPIPE_SZ},${HELPER_STDIN_PIPE_BYTES})"; } 2>/dev/null;`;

/**
 * The remote command that starts our helper from an upload of `bundleLength`
 * bytes: `/bin/sh -c 'export ...; perl ...; exec NODE -e LOADER ARGS'`
 * (through /bin/sh, as sshuttle does, so any login shell works; exit 127 =
 * NODE not found).
 */
export const uploadCommand = (node: string, bundleLength: number, o: HelperOptions): string => {
  const env = HELPER_MALLOC_ENV.map(([k, v]) => `${k}="\${${k}:-${v}}"`).join(' ');
  const inner = [
    `export ${env};`,
    growStdinPipe,
    'exec',
    shq(node),
    '-e',
    shq(loaderScript(bundleLength)),
    ...helperArgs(o),
  ].join(' ');
  return `/bin/sh -c ${shq(inner)}`;
};

export interface SshArgvOptions {
  /** `-e CMD`, already split into words (sshuttle: `shlex.split`); empty = `ssh`. */
  readonly sshCmd: readonly string[];
  readonly user: string | null;
  readonly host: string;
  readonly port: number | null;
  /** sshuttle's `--no-cmd-delimiter`: no `--` before the remote command. */
  readonly noCmdDelimiter: boolean;
  /** With a password in -r, sshuttle runs `sshpass -e` with SSHPASS set. */
  readonly password: string | null;
  readonly remoteCommand: string;
}

/** The external ssh's argv, exactly as sshuttle's `ssh.connect` builds it. */
export const sshArgv = (o: SshArgvOptions): string[] => {
  const ssh = o.sshCmd.length > 0 ? [...o.sshCmd] : ['ssh'];
  const port = o.port === null ? [] : ['-p', String(o.port)];
  const rhost = o.user === null || o.user === '' ? o.host : `${o.user}@${o.host}`;
  const delimiter = o.noCmdDelimiter ? [] : ['--'];
  const pass = o.password === null || o.password === '' ? [] : ['sshpass', '-e'];
  return [...pass, ...ssh, ...port, rhost, ...delimiter, o.remoteCommand];
};

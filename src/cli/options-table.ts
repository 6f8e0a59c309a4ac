/**
 * Every command-line option, once: its names, whether it takes a value, its
 * help group, one-line description and default. The parser and `--help` are
 * both driven by this table, so neither can forget an option.
 */

export const OPTION_GROUPS = [
  'Tunnel target',
  'What to capture',
  'DNS and names',
  'Capture method and listener',
  'Transport',
  'Flow control',
  'Running in the background',
  'Privileges',
  'Debugging and recording',
] as const;
export type OptionGroup = (typeof OPTION_GROUPS)[number];

export interface OptionDef {
  /** Long name without the leading `--`. */
  readonly long: string;
  /** Single-letter short name, if any. */
  readonly short?: string;
  /** Name of the value in help; null = a flag that takes no value. */
  readonly metavar: string | null;
  readonly group: OptionGroup;
  readonly help: string;
  /** Default as shown in help; absent = nothing worth showing. */
  readonly default?: string;
}

export const DEFAULT_LATENCY_BUFFER_SIZE = 32768;
export const DEFAULT_WRAP = 65535;
export const DEFAULT_PIDFILE = './sshuttle.pid';
export const DEFAULT_TMARK = '0x01';

export const OPTIONS = [
  // Tunnel target
  {
    long: 'remote',
    short: 'r',
    metavar: '[USER[:PASSWORD]@]HOST[:PORT]',
    group: 'Tunnel target',
    help: 'ssh server to tunnel through; IPv6 as [ADDR]:PORT (required)',
  },
  {
    long: 'ssh-cmd',
    short: 'e',
    metavar: 'CMD',
    group: 'Tunnel target',
    help: 'ssh command line used to reach the server, shell-split',
    default: 'ssh',
  },
  {
    long: 'ssh-config',
    metavar: 'FILE',
    group: 'Tunnel target',
    help: 'ssh client configuration to read host aliases and options from',
    default: '$HOME/.ssh/config',
  },
  {
    long: 'python',
    metavar: 'PATH',
    group: 'Tunnel target',
    help: 'Python interpreter on the remote server',
    default: 'python3, then python',
  },
  {
    long: 'remote-shell',
    metavar: 'PROGRAM',
    group: 'Tunnel target',
    help: 'quote the remote command for a Windows shell: cmd or powershell',
    default: 'POSIX /bin/sh',
  },
  {
    long: 'no-cmd-delimiter',
    metavar: null,
    group: 'Tunnel target',
    help: 'do not put "--" before the remote command (for ssh wrappers)',
  },
  // What to capture
  {
    long: 'exclude',
    short: 'x',
    metavar: 'IP/MASK[:PORT[-PORT]]',
    group: 'What to capture',
    help: 'leave this subnet alone (repeatable)',
  },
  {
    long: 'exclude-from',
    short: 'X',
    metavar: 'PATH',
    group: 'What to capture',
    help: 'exclude the subnets listed in a file, one per line, # comments',
  },
  {
    long: 'subnets',
    short: 's',
    metavar: 'PATH',
    group: 'What to capture',
    help: 'capture the subnets listed in a file, one per line, # comments',
  },
  {
    long: 'auto-nets',
    short: 'N',
    metavar: null,
    group: 'What to capture',
    help: "also capture the server's routed IPv4 subnets",
  },
  {
    long: 'disable-ipv6',
    metavar: null,
    group: 'What to capture',
    help: 'never capture IPv6; IPv6 subnets are ignored',
  },
  {
    long: 'user',
    metavar: 'USER',
    group: 'What to capture',
    help: "capture only this local user's traffic (nat method)",
    default: 'all users',
  },
  {
    long: 'group',
    metavar: 'GROUP',
    group: 'What to capture',
    help: "capture only this local group's traffic (nat method)",
    default: 'all groups',
  },
  // DNS and names
  {
    long: 'dns',
    metavar: null,
    group: 'DNS and names',
    help: 'capture DNS requests to the name servers in /etc/resolv.conf',
  },
  {
    long: 'ns-hosts',
    metavar: 'IP[,IP]',
    group: 'DNS and names',
    help: 'capture DNS requests to these name servers only (comma/space list)',
  },
  {
    long: 'to-ns',
    metavar: 'IP[:PORT]',
    group: 'DNS and names',
    help: 'name server the remote side forwards captured DNS requests to',
    default: "remote's /etc/resolv.conf",
  },
  {
    long: 'auto-hosts',
    short: 'H',
    metavar: null,
    group: 'DNS and names',
    help: 'keep adding remote host names to the local /etc/hosts',
  },
  {
    long: 'seed-hosts',
    metavar: 'HOST[,HOST]',
    group: 'DNS and names',
    help: 'host names to start the --auto-hosts scan from (comma list)',
  },
  {
    long: 'hostwatch',
    metavar: null,
    group: 'DNS and names',
    help: '(internal in sshuttle) run the host watcher; not supported',
  },
  // Capture method and listener
  {
    long: 'method',
    metavar: 'TYPE',
    group: 'Capture method and listener',
    help: 'firewall method: auto, nft, nat, tproxy, nft-tproxy, pf, ipfw',
    default: 'auto: nat, nft, pf, then ipfw',
  },
  {
    long: 'listen',
    short: 'l',
    metavar: '[IP:]PORT[,...]',
    group: 'Capture method and listener',
    help: 'redirector address(es), one IPv4 and one IPv6 ([::1]:0); port 0 = search',
    default: '127.0.0.1 and ::1, ports 12300 down',
  },
  {
    long: 'tmark',
    short: 't',
    metavar: 'MARK',
    group: 'Capture method and listener',
    help: 'tproxy firewall mark, hexadecimal, 0x optional',
    default: DEFAULT_TMARK,
  },
  {
    long: 'namespace',
    metavar: 'NAME',
    group: 'Capture method and listener',
    help: 'run inside the Linux network namespace /var/run/netns/NAME',
  },
  {
    long: 'namespace-pid',
    metavar: 'PID',
    group: 'Capture method and listener',
    help: 'run inside the network namespace of process PID',
  },
  // Transport
  {
    long: 'transport',
    metavar: 'KIND',
    group: 'Transport',
    help: 'direct (ssh2 in-process), helper (remote node helper) or auto',
    default: 'auto',
  },
  {
    long: 'helper-cmd',
    metavar: 'CMD',
    group: 'Transport',
    help: 'remote command that starts the helper for --transport helper',
  },
  {
    long: 'node',
    metavar: 'PATH',
    group: 'Transport',
    help: 'Node.js executable on the remote server for the helper',
    default: 'node',
  },
  {
    long: 'no-reconnect',
    metavar: null,
    group: 'Transport',
    help: 'exit when the ssh connection drops instead of reconnecting',
  },
  // Flow control
  {
    long: 'no-latency-control',
    metavar: null,
    group: 'Flow control',
    help: 'turn off the fullness check: more bandwidth, worse latency',
  },
  {
    long: 'latency-buffer-size',
    metavar: 'SIZE',
    group: 'Flow control',
    help: 'bytes in flight before the fullness check waits',
    default: String(DEFAULT_LATENCY_BUFFER_SIZE),
  },
  {
    long: 'wrap',
    metavar: 'NUM',
    group: 'Flow control',
    help: 'highest channel number before numbering restarts (testing; implies the helper transport)',
    default: String(DEFAULT_WRAP),
  },
  // Running in the background
  {
    long: 'daemon',
    short: 'D',
    metavar: null,
    group: 'Running in the background',
    help: 'go to the background once connected; implies --syslog',
  },
  {
    long: 'syslog',
    metavar: null,
    group: 'Running in the background',
    help: 'send log messages to syslog instead of stderr',
  },
  {
    long: 'pidfile',
    metavar: 'PATH',
    group: 'Running in the background',
    help: 'where --daemon writes its process id',
    default: DEFAULT_PIDFILE,
  },
  // Privileges
  {
    long: 'sudoers-no-modify',
    metavar: null,
    group: 'Privileges',
    help: 'print a sudoers snippet for password-less use, then exit',
  },
  {
    long: 'sudoers-user',
    metavar: 'NAME',
    group: 'Privileges',
    help: 'user, %group or alias the sudoers snippet is for',
    default: 'current user',
  },
  {
    long: 'no-sudo-pythonpath',
    metavar: null,
    group: 'Privileges',
    help: 'accepted for compatibility; sshuttle-ts sets no PYTHONPATH',
  },
  {
    long: 'firewall',
    metavar: null,
    group: 'Privileges',
    help: '(internal) run the privileged firewall manager',
  },
  // Debugging and recording
  {
    long: 'verbose',
    short: 'v',
    metavar: null,
    group: 'Debugging and recording',
    help: 'more log output; repeat for more (-vv, -vvv)',
  },
  {
    long: 'record',
    metavar: 'FILE',
    group: 'Debugging and recording',
    help: 'record the session to FILE for "sshuttle-ts replay FILE"',
  },
  {
    long: 'record-payload',
    metavar: null,
    group: 'Debugging and recording',
    help: 'also record payload bytes (needs --record)',
  },
  {
    long: 'version',
    short: 'V',
    metavar: null,
    group: 'Debugging and recording',
    help: 'print the version and exit',
  },
  {
    long: 'help',
    short: 'h',
    metavar: null,
    group: 'Debugging and recording',
    help: 'print this help and exit',
  },
] as const satisfies readonly OptionDef[];

export type OptionName = (typeof OPTIONS)[number]['long'];

/** The option with this long name or short letter. */
export const optionByLong = (long: string): OptionDef | undefined =>
  (OPTIONS as readonly OptionDef[]).find((o) => o.long === long);

export const optionByShort = (short: string): OptionDef | undefined =>
  (OPTIONS as readonly OptionDef[]).find((o) => o.short === short);

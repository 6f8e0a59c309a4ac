/**
 * The Config a bare command line gives: sshuttle 1.3's defaults plus ours.
 */
import type { Config } from '../domain/config.js';
import {
  DEFAULT_LATENCY_BUFFER_SIZE,
  DEFAULT_PIDFILE,
  DEFAULT_TMARK,
  DEFAULT_WRAP,
} from './options-table.js';

/**
 * Defaults; `home` is `$HOME` for the default `--ssh-config`. Empty lists and
 * null mean "use the built-in behaviour" (e.g. `listen: []` = 127.0.0.1 and
 * ::1 with port search; `sshCmd: null` = `ssh`; `python: null` = python3,
 * then python).
 */
export const defaultConfig = (home: string | undefined): Config => ({
  remote: null,
  subnets: [],
  excludes: [],
  listen: [],
  autoHosts: false,
  autoNets: false,
  dns: false,
  nsHosts: [],
  toNs: null,
  method: 'auto',
  python: null,
  verbose: 0,
  sshCmd: null,
  noCmdDelimiter: false,
  remoteShell: null,
  seedHosts: [],
  latencyControl: true,
  latencyBufferSize: DEFAULT_LATENCY_BUFFER_SIZE,
  wrap: DEFAULT_WRAP,
  disableIpv6: false,
  daemon: false,
  syslog: false,
  pidfile: DEFAULT_PIDFILE,
  user: null,
  group: null,
  sudoersNoModify: false,
  sudoersUser: null,
  noSudoPythonpath: false,
  tmark: DEFAULT_TMARK,
  namespace: null,
  namespacePid: null,
  sshConfig: `${(home ?? '').replace(/\/+$/, '')}/.ssh/config`,
  transport: 'auto',
  helperCmd: null,
  node: 'node',
  record: null,
  recordPayload: false,
  noReconnect: false,
});

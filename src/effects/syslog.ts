/**
 * --syslog: log lines as syslog datagrams on the local syslog socket
 * (/dev/log; SSHUTTLE_TS_SYSLOG_SOCKET points it elsewhere, e.g. a test's
 * own socket), in the local format `<PRI>sshuttle-ts[PID]: MESSAGE`, facility
 * daemon as upstream (which pipes into `logger -p daemon.err -t sshuttle`),
 * with each line's own severity. Lost datagrams (no syslog daemon) are
 * dropped: logging must never stop the tunnel.
 */
import { sendDatagram } from './unix-native.js';

export const SYSLOG_SOCKET_ENV = 'SSHUTTLE_TS_SYSLOG_SOCKET';
const DAEMON_FACILITY = 3;

/** syslog severities for pino's numeric levels. */
export const severityOf = (pinoLevel: number): number =>
  pinoLevel >= 50 ? 3 : pinoLevel >= 40 ? 4 : pinoLevel >= 30 ? 6 : 7;

/** One syslog datagram's text (no timestamp: the daemon adds it). */
export const syslogLine = (severity: number, pid: number, message: string, tag = 'sshuttle-ts') =>
  `<${DAEMON_FACILITY * 8 + severity}>${tag}[${pid}]: ${message.replace(/[\r\n]+/g, ' ').trim()}`;

/**
 * A pino JSON line as one readable message: `msg` then the other fields as
 * key=value (time and level are the datagram's own).
 */
export const messageOf = (json: string): { level: number; text: string } => {
  try {
    const o = JSON.parse(json) as Record<string, unknown>;
    const level = typeof o.level === 'number' ? o.level : 30;
    const fields = Object.entries(o)
      .filter(([k]) => k !== 'level' && k !== 'time' && k !== 'msg' && k !== 'name')
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
    return { level, text: [String(o.msg ?? ''), ...fields].filter((s) => s !== '').join(' ') };
  } catch {
    return { level: 30, text: json };
  }
};

export interface Syslog {
  readonly send: (severity: number, message: string) => void;
}

export const makeSyslog = (
  socket = process.env[SYSLOG_SOCKET_ENV] || '/dev/log',
  pid = process.pid,
): Syslog => ({
  send: (severity, message) => {
    void sendDatagram(socket, Buffer.from(syslogLine(severity, pid, message)));
  },
});

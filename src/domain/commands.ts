/**
 * What the session reducer asks the world to do. Commands are data; drivers
 * turn them into effects and answer with events.
 */
import type { Side } from './events.js';
import type { Nameserver } from './firewall-plan.js';
import type { Endpoint } from './ports.js';
import type { Family, SubnetRule } from './subnet.js';

export interface ListenAddr {
  readonly family: Family;
  readonly ip: string;
  /** 0 = search downward from 12300. */
  readonly port: number;
}

/** Ports the firewall redirects to; 0 = that family is not used. */
export interface RedirectPorts {
  readonly tcp4: number;
  readonly tcp6: number;
  readonly dns4: number;
  readonly dns6: number;
}

export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';

export type Command =
  | { readonly kind: 'fw.start' }
  | {
      readonly kind: 'listen';
      readonly addrs: readonly ListenAddr[];
      /** UDP addresses for captured DNS requests. */
      readonly dns: readonly ListenAddr[];
      /** tproxy: transparent listeners, and UDP on the TCP ports. */
      readonly tproxy?: boolean;
    }
  | { readonly kind: 'ssh.connect' }
  | {
      readonly kind: 'fw.setup';
      readonly rules: readonly SubnetRule[];
      readonly nameservers: readonly Nameserver[];
      readonly ports: RedirectPorts;
    }
  | {
      readonly kind: 'chan.open';
      readonly id: number;
      readonly family: Family;
      readonly src: Endpoint;
      readonly dst: Endpoint;
    }
  /** Add names to the local /etc/hosts (the firewall helper owns the file). */
  | {
      readonly kind: 'fw.hosts';
      readonly entries: readonly { readonly name: string; readonly ip: string }[];
    }
  /** Send a DNS request through the tunnel; the answer comes back as an event. */
  | { readonly kind: 'dns.forward'; readonly id: number; readonly chunk: Buffer }
  /** Answer the application that asked, from the DNS listener of `family`. */
  | {
      readonly kind: 'dns.reply';
      readonly id: number;
      readonly family: Family;
      readonly dst: Endpoint;
      readonly chunk: Buffer;
    }
  /** Open datagram session `id` through the tunnel (UDP_OPEN), for the local `src`. */
  | {
      readonly kind: 'udp.open';
      readonly id: number;
      readonly family: Family;
      readonly src: Endpoint;
    }
  /** Send one datagram of session `id` to `dst` (UDP_DATA). */
  | {
      readonly kind: 'udp.send';
      readonly id: number;
      readonly dst: Endpoint;
      readonly chunk: Buffer;
    }
  /** End datagram session `id` (UDP_CLOSE). */
  | { readonly kind: 'udp.close'; readonly id: number }
  /** Hand a datagram to the local application `to`, sent from `from` (a remote address). */
  | {
      readonly kind: 'udp.reply';
      readonly family: Family;
      readonly from: Endpoint;
      readonly to: Endpoint;
      readonly chunk: Buffer;
    }
  | { readonly kind: 'write'; readonly id: number; readonly side: Side; readonly chunk: Buffer }
  | { readonly kind: 'pause'; readonly id: number; readonly side: Side }
  | { readonly kind: 'resume'; readonly id: number; readonly side: Side }
  /** Half-close: no more data will be written to that side. */
  | { readonly kind: 'end'; readonly id: number; readonly side: Side }
  /** Close gracefully (flush, then close) or at once (`abort`). */
  | { readonly kind: 'close'; readonly id: number; readonly side: Side; readonly abort: boolean }
  | {
      readonly kind: 'log';
      readonly level: LogLevel;
      readonly msg: string;
      readonly fields?: Readonly<Record<string, unknown>>;
    }
  /** Answer with a `timer` event named `name` after `ms` (replaces a pending one of that name). */
  | { readonly kind: 'timer.start'; readonly name: string; readonly ms: number }
  /** Restore the firewall, close everything, exit with `code`. */
  | { readonly kind: 'shutdown'; readonly code: number; readonly reason: string };

export type CommandKind = Command['kind'];

/**
 * A command as recorded: commands lose their chunks (sizes are in the events
 * that caused them), so recordings without payloads still compare equal.
 */
export const summarizeCommand = (c: Command): Record<string, unknown> => {
  switch (c.kind) {
    case 'write':
    case 'dns.forward':
    case 'dns.reply':
    case 'udp.send':
    case 'udp.reply': {
      const { chunk: _chunk, ...rest } = c;
      return rest;
    }
    default:
      return { ...c };
  }
};

/**
 * The direct transport: one ssh2 connection, one `direct-tcpip` channel per
 * captured connection. sshd itself connects to the destination, so nothing
 * is installed on the server.
 */
import { type Either, isLeft } from 'fp-ts/lib/Either.js';
import { type Observable, Subject } from 'rxjs';
import type { Client, ClientChannel } from 'ssh2';
import type { Command } from '../domain/commands.js';
import type { Event } from '../domain/events.js';
import type { StreamsDriver } from './streams-driver.js';

/** What the transport needs of an established SSH connection. */
export interface SshLink {
  readonly client: Client;
  /** The address the SSH connection goes to (never to be captured). */
  readonly serverAddress: string;
  /** Every address of every hop, to exclude from capture. */
  readonly allServerAddresses: readonly string[];
  readonly close: () => void;
  readonly closed: Promise<{ readonly reason: string }>;
}

export interface DirectTransport {
  readonly driver: (commands: Observable<Command>) => Observable<Event>;
  readonly close: () => void;
}

/** ssh2's channel-open failure reasons, in words a user understands. */
const openFailure = (err: Error & { reason?: number | string }): string => {
  switch (err.reason) {
    case 1:
      return 'administratively prohibited (the server forbids TCP forwarding: AllowTcpForwarding/PermitOpen)';
    case 2:
      return 'connect failed';
    case 4:
      return 'resource shortage on the server';
    default:
      return err.message;
  }
};

export const makeDirectTransport = (
  now: () => number,
  streams: StreamsDriver,
  connect: () => Promise<Either<{ readonly message: string }, SshLink>>,
): DirectTransport => {
  const events = new Subject<Event>();
  let link: SshLink | null = null;
  let closing = false;

  const onConnect = async (): Promise<void> => {
    const result = await connect();
    if (isLeft(result)) {
      events.next({ kind: 'ssh.failed', t: now(), message: result.left.message });
      return;
    }
    link = result.right;
    void link.closed.then(({ reason }) => {
      if (!closing) events.next({ kind: 'ssh.down', t: now(), reason });
    });
    events.next({
      kind: 'ssh.up',
      t: now(),
      server: link.serverAddress,
      excludes: [...link.allServerAddresses],
    });
  };

  const open = (c: Extract<Command, { kind: 'chan.open' }>): void => {
    if (link === null) {
      events.next({ kind: 'chan.failed', t: now(), id: c.id, reason: 'not connected' });
      return;
    }
    link.client.forwardOut(
      c.src.ip,
      c.src.port,
      c.dst.ip,
      c.dst.port,
      (err, channel: ClientChannel) => {
        if (err) {
          events.next({ kind: 'chan.failed', t: now(), id: c.id, reason: openFailure(err) });
          return;
        }
        streams.attach(c.id, 'remote', channel);
        events.next({ kind: 'chan.open', t: now(), id: c.id });
      },
    );
  };

  return {
    driver: (commands) => {
      commands.subscribe({
        next: (c) => {
          if (c.kind === 'ssh.connect') void onConnect();
          else if (c.kind === 'chan.open') open(c);
        },
      });
      return events.asObservable();
    },
    close: () => {
      closing = true;
      link?.close();
    },
  };
};

/**
 * Reconnecting after the SSH connection drops: the backoff schedule, pure.
 * The session reducer asks for a timer with the delay; a driver answers with
 * a `timer` event when it is due, so no clock is read here.
 */

export interface BackoffPolicy {
  /** Delay before the first attempt after the drop (ms). */
  readonly firstMs: number;
  /** Each failed attempt multiplies the delay by this. */
  readonly factor: number;
  /** The delay never grows beyond this (ms), so a server that is back is found soon. */
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { firstMs: 500, factor: 2, maxMs: 4_000 };

/** The name of the session's reconnect timer. */
export const RECONNECT_TIMER = 'reconnect';

/** Delay before attempt `attempt` (0 = the first after the drop), in ms. */
export const backoffDelay = (attempt: number, p: BackoffPolicy = DEFAULT_BACKOFF): number =>
  Math.min(p.maxMs, Math.round(p.firstMs * p.factor ** Math.max(0, attempt)));

/** Reconnect bookkeeping kept in the session state. */
export interface ReconnectState {
  /** False with --no-reconnect: a drop ends the session. */
  readonly enabled: boolean;
  /** Attempts made since the drop (0 while waiting for the first). */
  readonly attempt: number;
  /** When the connection dropped (event time), null while connected. */
  readonly downSince: number | null;
  /** How many times the tunnel came back. */
  readonly reconnects: number;
}

export const initialReconnect: ReconnectState = {
  enabled: false,
  attempt: 0,
  downSince: null,
  reconnects: 0,
};

/** `1.5 s`, `4 s`: a delay as the logs say it. */
export const seconds = (ms: number): string => `${Math.round(ms / 100) / 10} s`;

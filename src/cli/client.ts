import type { Config } from '../domain/config.js';

/** Runs the client until it exits; resolves to the process exit code. */
export const runClient = async (_config: Config): Promise<number> => {
  throw new Error('runClient: not wired yet');
};

/**
 * The helper transport as the client's options describe it: which transport
 * `--transport` means, and the mux and launch settings from the config.
 */
import * as E from 'fp-ts/lib/Either.js';
import type { Logger } from 'pino';
import type { Config } from '../../domain/config.js';
import { defaultMuxConfig, type MuxConfig } from '../../domain/mux/index.js';
import { connectSshHere } from '../ssh/connect-here.js';
import type { StreamsDriver } from '../streams-driver.js';
import { connectHelper } from './connect-helper.js';
import { type HelperTransport, makeHelperTransport } from './helper-transport.js';

export { usesHelper } from '../../domain/transport-choice.js';

/** The client mux: sshuttle's latency control options, `--wrap`. */
export const clientMuxConfig = (config: Config): MuxConfig => ({
  ...defaultMuxConfig('client'),
  latencyControl: config.latencyControl,
  latencyBufferSize: config.latencyBufferSize,
  wrap: config.wrap,
});

export const helperTransportFor = (
  config: Config,
  deps: {
    readonly now: () => number;
    readonly streams: StreamsDriver;
    readonly log: Logger;
    /** Shell word splitting for `-e` (sshuttle: `shlex.split`). */
    readonly splitWords: (text: string) => E.Either<string, string[]>;
  },
): HelperTransport => {
  const { log } = deps;
  const say = (level: 'error' | 'warn' | 'info' | 'debug' | 'trace', msg: string): void =>
    log[level](msg);
  return makeHelperTransport(
    deps.now,
    deps.streams,
    async () => {
      const remote = config.remote;
      if (remote === null) return E.left({ message: 'no remote given (-r)' });
      let sshCmd: string[] | null = null;
      if (config.sshCmd !== null) {
        const words = deps.splitWords(config.sshCmd);
        if (E.isLeft(words)) return E.left({ message: `--ssh-cmd: ${words.left}` });
        sshCmd = words.right;
      }
      return connectHelper({
        remote,
        sshCmd,
        noCmdDelimiter: config.noCmdDelimiter,
        helperCmd: config.helperCmd,
        node: config.node,
        helper: {
          verbose: config.verbose,
          latencyControl: config.latencyControl,
          latencyBufferSize: config.latencyBufferSize,
          toNs: config.toNs,
          autoNets: config.autoNets,
          autoHosts: config.autoHosts,
        },
        connectSsh: () => connectSshHere(remote, config.sshConfig, log, 'tick'),
        log: say,
        env: process.env,
      });
    },
    {
      mux: clientMuxConfig(config),
      log: say,
      autoNets: config.autoNets,
      hostReq: config.autoHosts || config.seedHosts.length > 0 ? config.seedHosts : null,
    },
  );
};

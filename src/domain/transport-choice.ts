import { type Config, isTproxyMethod } from './config.js';
import { DEFAULT_WRAP } from './mux/index.js';

/**
 * `auto` is the direct transport unless something only the helper can do is
 * asked for: `-e`, `--helper-cmd`, or `--method tproxy` (UDP travels as
 * UDP_OPEN/DATA/CLOSE, which ssh2's direct-tcpip cannot carry).
 */
export const usesHelper = (config: Config): boolean =>
  config.transport === 'helper' ||
  (config.transport === 'auto' &&
    (config.sshCmd !== null ||
      config.helperCmd !== null ||
      isTproxyMethod(config.method) ||
      // --wrap is about mux channel ids: only the helper has them.
      config.wrap !== DEFAULT_WRAP));

import type { Config } from './config.js';
import { DEFAULT_WRAP } from './mux/index.js';

/** `auto` is the direct transport unless something only the helper can do is asked for. */
export const usesHelper = (config: Config): boolean =>
  config.transport === 'helper' ||
  (config.transport === 'auto' &&
    (config.sshCmd !== null ||
      config.helperCmd !== null ||
      // --wrap is about mux channel ids: only the helper has them.
      config.wrap !== DEFAULT_WRAP));

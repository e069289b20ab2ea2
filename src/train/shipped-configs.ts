// The configs this package ships (configs/), found from wherever ctl runs. A leaf module: commands import it at
// start-up without loading the config schema.
import { fileURLToPath } from 'node:url';

/** The path of configs/<name>.json in this package. */
export function shippedConfig(name: string): string {
  return fileURLToPath(new URL(`../../configs/${name}.json`, import.meta.url));
}

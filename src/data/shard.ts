// `--shard I/N`: which signatures one process of N handles. One rule, shared by `ctl download` and `ctl embed`,
// so shard I of the download and shard I of the embedding cover the same images.
import { hashString } from '../util/random.js';

export interface Shard {
  /** 0 <= index < count. */
  index: number;
  count: number;
}

/**
 * The shard (0..count-1) a signature belongs to: FNV-1a (32-bit) of the signature string, modulo `count`.
 * A hash rather than the hex prefix, so ids that are not uniformly random (synthetic signatures, composite keys)
 * still spread evenly; it depends only on the string, never on the order or number of items.
 */
export function shardOf(sig: string, count: number): number {
  return hashString(sig) % count;
}

/** True when `sig` belongs to `shard`; every signature belongs when there is no shard. */
export function inShard(sig: string, shard?: Shard): boolean {
  return !shard || shardOf(sig, shard.count) === shard.index;
}

// The embedding loop's fixed limits, apart from the loop so that `ctl embed --help` can state them without loading
// it (and sharp with it) at start-up.

/** Consecutive service failures after which the run stops: the service is down, not one image bad. */
export const MAX_CONSECUTIVE_SERVICE_FAILURES = 20;
/** Longest time between two commits of a store shard while batches complete, seconds. */
export const COMMIT_SECONDS = 30;

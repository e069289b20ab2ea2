// Redirects, as every HTTP client of the pipeline follows them (metadata fetch, image download): which statuses
// send the client on, and where to, http(s) only.

/** Statuses that send the client on to their Location. */
export function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/** The http(s) URL a Location header names, resolved against the request's URL; undefined for anything else. */
export function redirectTarget(location: string, base: string): string | undefined {
  if (!URL.canParse(location, base)) return undefined;
  const target = new URL(location, base);
  return target.protocol === 'http:' || target.protocol === 'https:' ? target.href : undefined;
}

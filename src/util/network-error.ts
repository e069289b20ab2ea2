// A failed HTTP request in one line, for every client of the pipeline (dataset fetch, embedding service). Node's
// fetch says only "fetch failed" and keeps what happened in its cause ("connect ECONNREFUSED 127.0.0.1:8080",
// "getaddrinfo ENOTFOUND host", "read ECONNRESET"); undici's request says it in the error itself.

/** The error's message, then its causes' (outermost first), each with its code where the message lacks it. */
export function describeNetworkError(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e != null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (!(e instanceof Error)) {
      parts.push(String(e));
      break;
    }
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string' || e.message.includes(code)) parts.push(e.message);
    else parts.push(e.message ? `${e.message} (${code})` : code); // an AggregateError (each address refused) has no message
  }
  return parts.join(': ');
}

// What both pages use: JSON from the server, element building, percentages.
export const $ = (id) => document.getElementById(id);

/** GET (or `init`) a JSON API path; a non-2xx answer throws its `error` (or the status, for a proxy's HTML page). */
export async function api(path, init) {
  const res = await fetch(path, init);
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

/** An element with properties (or attributes, where it has no such property) and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

export const pct = (x) => (typeof x === 'number' ? `${(x * 100).toFixed(1)}%` : '–');

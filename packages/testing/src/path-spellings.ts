/**
 * Other ways to spell a request path, as an attacker probing a route-based check would: percent
 * encoding (of one character, of a whole segment, in either hex case), doubled slashes, dot
 * segments, case changes, trailing slashes, `;` parameters, query and fragment tricks, and the
 * absolute form. A router may take some of them for the route itself and refuse the rest; an
 * access check must agree with the router on every one.
 */
import { request } from 'node:http';

export function pathSpellings(path: string): string[] {
  const segments = path.split('/').slice(1);
  const hex = (c: string) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  const out = new Set<string>([path]);
  segments.forEach((segment, i) => {
    const replacing = (spelled: string) => `/${segments.map((s, j) => (j === i ? spelled : s)).join('/')}`;
    const first = segment.slice(0, 1);
    const rest = segment.slice(1);
    for (const spelled of [
      hex(first) + rest,
      hex(first).toUpperCase() + rest,
      segment.replace(/./g, hex),
      segment.toUpperCase(),
      first.toUpperCase() + rest,
      `${segment};x=1`,
      `${segment};`,
      `${segment}%3b`,
      `${segment}%2f`,
      `${segment}%00`,
      `${segment}%20`,
      `${segment}.`,
      `./${segment}`,
      `%2e/${segment}`,
      `x/../${segment}`,
      `x/%2e%2e/${segment}`,
      `/${segment}`,
      `${segment}/`,
    ]) {
      out.add(replacing(spelled));
    }
  });
  for (const spelled of [
    `${path}/`,
    `${path}//`,
    `${path}/.`,
    `${path}/..`,
    `${path}?`,
    `${path}?x=1`,
    `${path}?token=x&authorization=Bearer%20x`,
    `${path}#x`,
    `${path}%3f`,
    `${path}%23`,
    `/${path}`,
    `/.${path}`,
    `/${path.slice(1).replaceAll('/', '%2f')}`,
    `http://127.0.0.1${path}`,
    `http://user@127.0.0.1${path}`,
  ]) {
    out.add(spelled);
  }
  return [...out];
}

/** One request with `path` sent exactly as given (fetch would normalise it); its status and body. */
export function rawRequest(
  base: string,
  options: { method: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method: options.method, path: options.path, headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

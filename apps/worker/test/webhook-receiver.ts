/**
 * A notification webhook for tests: a real local HTTP server that keeps every request (raw body,
 * headers, when) and answers what the test asks: a queue of answers first, then `status`.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NotifyEvent } from '@ghl-ingest/queue';

export interface Answer {
  status: number;
  headers?: Record<string, string>;
}

export interface Received {
  method: string;
  /** Path and query. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** performance.now() when it arrived. */
  at: number;
  /** What it was answered. */
  status: number;
}

export class WebhookReceiver {
  readonly received: Received[] = [];
  /** Answered in turn, one per request, before `status`. */
  answers: Answer[] = [];
  /** The answer once `answers` is spent. */
  status = 200;
  readonly #server: Server;
  readonly url: string;

  private constructor(server: Server) {
    this.#server = server;
    this.url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
  }

  static async start(): Promise<WebhookReceiver> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const receiver = new WebhookReceiver(server);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const answer = receiver.answers.shift() ?? { status: receiver.status };
        receiver.received.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          at: performance.now(),
          status: answer.status,
        });
        res.writeHead(answer.status, answer.headers).end();
      });
    });
    return receiver;
  }

  /** The events of the requests answered 2xx, in order. */
  delivered(): NotifyEvent[] {
    return this.received.filter((r) => r.status >= 200 && r.status < 300).flatMap((r) => eventsOf(r));
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

export function eventsOf(request: Received): NotifyEvent[] {
  return (JSON.parse(request.body) as { events: NotifyEvent[] }).events;
}

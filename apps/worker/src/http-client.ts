/**
 * Our calls to HighLevel: `POST /conversations/messages/inbound`, and the reads, upserts and
 * uploads a delivery may need before it (reconcile.ts, prepare.ts), with got over a keep-alive agent.
 * got's own retries are off (the queue owns retries), HTTP errors do not throw (the answer is
 * classified), and every failure comes back as an Outcome, never as a got error: those carry
 * the request options, headers and token included. With tracing on, each request is a CLIENT
 * span named by its route template (`GET /conversations/{conversationId}/messages`) and carries
 * the trace on in its `traceparent` header.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { traceClient, tracingRequested, type HttpAnswer, type RateHeaders } from '@ghl-ingest/queue';
import type { InboundMessageBody } from '@ghl-ingest/schema';
import got, { RequestError, type Got } from 'got';
import type { Outcome } from './classify.ts';

export const API_VERSION = '2021-04-15';
export const INBOUND_PATH = 'conversations/messages/inbound';

/** The kinds of request a message's delivery makes (metrics count each; `ghl.request_kind` of their spans). */
export type RequestKind = 'post' | 'lookup' | 'upsert' | 'conversation' | 'upload';

/** What a request is, for its span: its kind, and its path as a template when the path holds an id. */
export interface RequestName {
  kind: RequestKind;
  /** e.g. `conversations/{conversationId}/messages`. Default: the path itself (which then must hold no id). */
  route?: string;
}

export interface PostResult {
  outcome: Outcome;
  latencyMs: number;
  rate: RateHeaders | undefined;
}

export interface HighLevelClientOptions {
  /** e.g. `https://services.leadconnectorhq.com`. */
  baseUrl: string;
  /** Whole-request timeout in ms (HTTP_TIMEOUT_MS). Connecting has its own, shorter one. */
  timeoutMs: number;
  /** Sockets per host. */
  maxSockets: number;
}

/** What a read got back. */
export type ReadResult = { kind: 'answer'; status: number; json: unknown; rate: RateHeaders | undefined } | { kind: 'network'; code: string; message: string };

export class HighLevelClient {
  #got: Got;
  #agents: { http: HttpAgent; https: HttpsAgent };
  /** Where paths are resolved, for spans' URLs: the base URL as a directory. */
  #base: URL;
  /** Whether requests are traced (the OTEL_* variables ask for it): read once. */
  #tracing = tracingRequested();

  constructor(options: HighLevelClientOptions) {
    this.#base = new URL(options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets, scheduling: 'lifo' as const };
    this.#agents = { http: new HttpAgent(agentOptions), https: new HttpsAgent(agentOptions) };
    this.#got = got.extend({
      prefixUrl: options.baseUrl,
      agent: this.#agents,
      retry: { limit: 0 },
      throwHttpErrors: false,
      followRedirect: false,
      responseType: 'text',
      timeout: { connect: Math.min(10_000, options.timeoutMs), request: options.timeoutMs },
      headers: { version: API_VERSION, accept: 'application/json' },
    });
  }

  async post(token: string, body: InboundMessageBody): Promise<PostResult> {
    return this.send(token, 'POST', INBOUND_PATH, { json: body }, { kind: 'post' });
  }

  /**
   * Another call the delivery of a message needs (reconcile.ts, prepare.ts): JSON or a multipart
   * form to `path`, as the location, with the endpoint's own `Version`. Never throws: the outcome
   * as a post's, the answer's body as text.
   */
  async send(
    token: string,
    method: 'GET' | 'POST',
    path: string,
    request: { json?: unknown; form?: FormData; query?: Record<string, string>; version?: string },
    name: RequestName,
  ): Promise<PostResult> {
    return this.#traced(
      method,
      path,
      request.query,
      name,
      (trace) => this.#send(token, method, path, request, trace),
      ({ outcome }) => (outcome.kind === 'answer' ? { status: outcome.status } : { errorCode: outcome.code }),
    );
  }

  async #send(
    token: string,
    method: 'GET' | 'POST',
    path: string,
    request: { json?: unknown; form?: FormData; query?: Record<string, string>; version?: string },
    trace: Record<string, string>,
  ): Promise<PostResult> {
    const started = performance.now();
    const headers: Record<string, string> = { ...trace, authorization: `Bearer ${token}` };
    if (request.version !== undefined) headers.version = request.version;
    try {
      const res = await this.#got(path, {
        method,
        headers,
        ...(request.json === undefined ? {} : { json: request.json }),
        ...(request.form === undefined ? {} : { body: request.form }),
        ...(request.query === undefined ? {} : { searchParams: request.query }),
      });
      return {
        outcome: { kind: 'answer', status: res.statusCode, body: res.body, retryAfter: res.headers['retry-after'] },
        latencyMs: performance.now() - started,
        rate: readRateHeaders(res.headers),
      };
    } catch (error) {
      const code = networkCode(error);
      const message = error instanceof Error ? error.message : String(error);
      const sent = error instanceof RequestError && error.timings?.upload !== undefined;
      return { outcome: { kind: 'network', code, message, sent }, latencyMs: performance.now() - started, rate: undefined };
    }
  }

  /**
   * A read (reconcile.ts): `GET` a path with query, as the location. The answer's JSON, or why
   * there is none. `route` is the path as a template when it holds an id.
   */
  async get(token: string, path: string, query: Record<string, string | undefined>, route?: string): Promise<ReadResult> {
    const searchParams = Object.fromEntries(Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined));
    const name: RequestName = route === undefined ? { kind: 'lookup' } : { kind: 'lookup', route };
    return this.#traced(
      'GET',
      path,
      searchParams,
      name,
      (trace) => this.#get(token, path, searchParams, trace),
      (result) => (result.kind === 'answer' ? { status: result.status } : { errorCode: result.code }),
    );
  }

  async #get(token: string, path: string, searchParams: Record<string, string>, trace: Record<string, string>): Promise<ReadResult> {
    try {
      const res = await this.#got.get(path, { searchParams, headers: { ...trace, authorization: `Bearer ${token}` } });
      let json: unknown;
      try {
        json = JSON.parse(res.body);
      } catch {
        json = undefined;
      }
      return { kind: 'answer', status: res.statusCode, json, rate: readRateHeaders(res.headers) };
    } catch (error) {
      return { kind: 'network', code: networkCode(error), message: error instanceof Error ? error.message : String(error) };
    }
  }

  /** Runs a request in a CLIENT span when tracing is on (`run` gets the headers carrying the trace); as it is otherwise. */
  async #traced<T>(
    method: 'GET' | 'POST',
    path: string,
    query: Record<string, string> | undefined,
    name: RequestName,
    run: (trace: Record<string, string>) => Promise<T>,
    answer: (result: T) => HttpAnswer,
  ): Promise<T> {
    if (!this.#tracing) return run({});
    const url = new URL(path, this.#base);
    for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
    return traceClient({ method, route: `/${name.route ?? path}`, url, kind: name.kind }, run, answer);
  }

  close(): void {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }
}

/** A failed request's error code (`ECONNRESET`, `ETIMEDOUT`, ...), never its message. */
function networkCode(error: unknown): string {
  return error instanceof RequestError ? error.code || 'ERR_REQUEST' : 'ERR_UNKNOWN';
}

/** HighLevel's rate headers, and where each goes. */
const RATE_HEADERS = [
  ['max', 'x-ratelimit-max'],
  ['remaining', 'x-ratelimit-remaining'],
  ['intervalMs', 'x-ratelimit-interval-milliseconds'],
  ['daily', 'x-ratelimit-limit-daily'],
  ['dailyRemaining', 'x-ratelimit-daily-remaining'],
] as const;
const DIGITS = /^\d+$/;

/** The rate headers of an answer (each a whole number, or left out), run for every answer. */
export function readRateHeaders(headers: Record<string, string | string[] | undefined>): RateHeaders | undefined {
  let rate: RateHeaders | undefined;
  for (const [field, header] of RATE_HEADERS) {
    const v = headers[header];
    if (typeof v !== 'string') continue;
    const trimmed = v.trim();
    if (!DIGITS.test(trimmed)) continue;
    rate ??= {};
    rate[field] = Number(trimmed);
  }
  return rate;
}

/**
 * What a message needs at HighLevel before its post, when its record did not give it:
 * - its contact, found or created by phone or email with `POST /contacts/upsert`, remembered in
 *   the location's contact directory (Redis), once per contact across every process;
 * - its conversation, when an upload needs one: found (`GET /conversations/search`) or created
 *   (`POST /conversations/`), minding that search lags a create (HighLevel's issue #5);
 * - its local files, uploaded right before the post (`POST /conversations/messages/upload`), since
 *   an uploaded file's URL lives about an hour: a retry later uploads them again.
 * Every request spends a slot of the location's budget, as a post does. An answer that is not a
 * success is settled against its slot and thrown as `StepFailed`, which the delivery classifies as
 * it would a post's.
 */
import { randomUUID } from 'node:crypto';
import type { ContactDirectory, FileStore } from '@ghl-ingest/queue';
import { contactIdentities, UPLOAD_RULES, type InboundMessageBody, type JobData, type StoredFile } from '@ghl-ingest/schema';
import { z } from 'zod';
import { classify, type Classification } from './classify.ts';
import type { HighLevelClient, PostResult, RequestKind } from './http-client.ts';
import { RetryLater } from './signals.ts';

export const CONTACTS_VERSION = '2021-07-28';
export const CONVERSATIONS_VERSION = '2021-04-15';

export type { RequestKind } from './http-client.ts';

/** How a step's requests take and settle slots of the location's budget (the delivery's own). */
export interface StepRequests {
  /** A slot for one more request; throws the delivery's signals (LocationWait, LockLost). */
  slot(): Promise<string>;
  /** Passes a slot's gate right before its request is sent. */
  send(slot: string): Promise<void>;
  answered(slot: string, result: PostResult): void;
  /** A 429: the location waits; how long (ms). */
  refuse(slot: string, retryAfterMs: number | undefined): number;
}

/** A step's request that did not succeed: its slot is settled; the delivery acts on `verdict`. */
export class StepFailed extends Error {
  override name = 'StepFailed';
  readonly step: 'contact' | 'conversation' | 'upload';
  readonly result: PostResult;
  readonly verdict: Exclude<Classification, { class: 'delivered' }>;
  /** For a 429: how long the location waits. */
  readonly waitMs: number | undefined;

  constructor(step: StepFailed['step'], result: PostResult, verdict: StepFailed['verdict'], waitMs?: number) {
    super(`${step}: ${verdict.reason}`);
    this.step = step;
    this.result = result;
    this.verdict = verdict;
    this.waitMs = waitMs;
  }
}

/** A file that cannot be uploaded for good: gone from Redis (expired, or lost), or refused by its private source. */
export class FileGone extends Error {
  override name = 'FileGone';
}

/** A private link's source did not answer (a network error, a 5xx): the message is retried. */
export class SourceUnavailable extends Error {
  override name = 'SourceUnavailable';
}

/** Request headers per host for links HighLevel cannot fetch (GHL_ATTACHMENT_HEADERS_FILE). */
export type PrivateHosts = ReadonlyMap<string, Readonly<Record<string, string>>>;

/** Reads `{ "<host>": { "<Header>": "<value>" } }`; throws a sentence naming what is wrong. */
export function parsePrivateHosts(json: unknown, where: string): PrivateHosts {
  const shape = z.record(z.string().min(1), z.record(z.string(), z.string()));
  const r = shape.safeParse(json);
  const expected = 'expected { "<host>": { "<Header>": "<value>" } }';
  if (!r.success) {
    const first = r.error.issues[0];
    throw new Error(`${where}: ${first === undefined ? 'invalid' : `${first.path.join('.') || '(root)'}: ${first.message}`}; ${expected}`);
  }
  for (const [host, headers] of Object.entries(r.data)) {
    const bad = Object.keys(headers).find((name) => !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name));
    if (bad !== undefined) throw new Error(`${where}: ${host}: "${bad.slice(0, 40)}" must be a header name; ${expected}`);
  }
  return new Map(Object.entries(r.data).map(([host, headers]) => [host.toLowerCase(), headers]));
}

/** What one upload sends: a name and its bytes. */
interface Upload {
  name: string;
  bytes: () => Promise<Buffer>;
}

const upsertAnswer = z.looseObject({ new: z.boolean().optional(), contact: z.looseObject({ id: z.string().min(1) }) });
const createAnswer = z.looseObject({ conversation: z.looseObject({ id: z.string().min(1) }) });
const searchAnswer = z.looseObject({ conversations: z.array(z.looseObject({ id: z.string().min(1), contactId: z.string().optional() })) });
const uploadAnswer = z.looseObject({ uploadedFiles: z.record(z.string(), z.string().min(1)) });

/** Whether the message needs anything before its post: a contact to find, files or private links to upload. */
export function needsPreparing(data: JobData, hosts: PrivateHosts = new Map()): boolean {
  if ((data.contact !== undefined && data.body.contactId === undefined) || data.files !== undefined) return true;
  return hosts.size > 0 && (data.body.attachments ?? []).some((u) => hostOf(u, hosts) !== undefined);
}

function hostOf(url: string, hosts: PrivateHosts): Readonly<Record<string, string>> | undefined {
  try {
    return hosts.get(new URL(url).host.toLowerCase()) ?? hosts.get(new URL(url).hostname.toLowerCase());
  } catch {
    return undefined;
  }
}

/**
 * Files in requests of at most `perRequest`, names distinct within one (HighLevel answers by
 * name), in their order.
 */
export function uploadBatches<T extends { name: string }>(files: readonly T[], perRequest: number = UPLOAD_RULES.filesPerRequest): T[][] {
  const batches: T[][] = [];
  for (const file of files) {
    const open = batches.find((b) => b.length < perRequest && !b.some((f) => f.name === file.name));
    if (open === undefined) batches.push([file]);
    else open.push(file);
  }
  return batches;
}

export interface PreparerOptions {
  client: Pick<HighLevelClient, 'send'>;
  contacts: ContactDirectory;
  files: FileStore;
  /** Links HighLevel cannot fetch: fetched with these headers and uploaded (never stored, never logged). */
  privateHosts?: PrivateHosts;
  /** A private link's fetch, whole request. Default 30 s. */
  fetchTimeoutMs?: number;
  /** How long a claim on resolving a contact lasts (a process that died holding it). */
  claimMs?: number;
  onRequest?: (kind: RequestKind) => void;
  /** A contact found (`created` false) or created. */
  onContact?: (locationId: string, created: boolean) => void;
  onUpload?: (locationId: string, files: number, bytes: number) => void;
}

export class Preparer {
  readonly #o: PreparerOptions;
  /** Contacts being resolved in this process: a second message for one waits for the first's answer. */
  readonly #resolving = new Map<string, Promise<string>>();

  constructor(options: PreparerOptions) {
    this.#o = options;
  }

  needs(data: JobData): boolean {
    return needsPreparing(data, this.#o.privateHosts);
  }

  /** The body to post: with its contact's id, its files and private links uploaded. */
  async prepare(data: JobData, token: string, requests: StepRequests): Promise<InboundMessageBody> {
    const body: InboundMessageBody = { ...data.body };
    if (data.contact !== undefined && body.contactId === undefined) body.contactId = await this.#contactId(data, token, requests);
    const hosts = this.#o.privateHosts ?? new Map();
    const links = (body.attachments ?? []).filter((u) => hostOf(u, hosts) !== undefined);
    const uploads: Upload[] = [
      ...links.map((url) => this.#fetched(url, hostOf(url, hosts) ?? {})),
      ...(data.files ?? []).map((file) => ({ name: file.name, bytes: () => this.#stored(file) })),
    ];
    if (uploads.length === 0) return body;
    const contactId = body.contactId;
    if (contactId === undefined && body.conversationId === undefined) throw new Error('a message with files needs a contact');
    const conversationId = body.conversationId ?? (await this.#conversationId(data.locationId, contactId as string, token, requests));
    const urls = await this.#upload(data, uploads, { conversationId, contactId }, token, requests);
    // Private links are replaced where they stood; files follow the record's own URLs.
    const byLink = new Map(links.map((link, i) => [link, urls[i] as string]));
    body.attachments = [...(body.attachments ?? []).map((u) => byLink.get(u) ?? u), ...urls.slice(links.length)];
    return body;
  }

  async #stored(file: StoredFile): Promise<Buffer> {
    const content = await this.#o.files.get(file.sha256);
    if (content === undefined) throw new FileGone(`"${file.name}" is no longer stored (kept 30 days after its import): import it again`);
    return content;
  }

  /** A private link, fetched with its host's headers when its upload is sent (at most HighLevel's size limit). */
  #fetched(url: string, headers: Readonly<Record<string, string>>): Upload {
    const path = new URL(url).pathname;
    const name = decodeURIComponent(path.slice(path.lastIndexOf('/') + 1)) || 'attachment';
    return {
      name,
      bytes: async () => {
        let res: Response;
        const where = new URL(url).host;
        try {
          res = await fetch(url, { headers, redirect: 'follow', signal: AbortSignal.timeout(this.#o.fetchTimeoutMs ?? 30_000) });
        } catch (error) {
          throw new SourceUnavailable(`fetching an attachment from ${where} failed: ${error instanceof Error ? error.message : String(error)}`);
        }
        if (res.status >= 500 || res.status === 429 || res.status === 408) throw new SourceUnavailable(`${where} answered ${res.status} for an attachment`);
        if (!res.ok) throw new FileGone(`${where} refused an attachment (${res.status}): check GHL_ATTACHMENT_HEADERS_FILE for that host`);
        const declared = Number(res.headers.get('content-length') ?? 0);
        if (declared > UPLOAD_RULES.maxBytes)
          throw new FileGone(`an attachment from ${where} is ${declared} bytes; HighLevel takes at most ${UPLOAD_RULES.maxBytes}`);
        const bytes = Buffer.from(await res.arrayBuffer());
        if (bytes.length > UPLOAD_RULES.maxBytes)
          throw new FileGone(`an attachment from ${where} is ${bytes.length} bytes; HighLevel takes at most ${UPLOAD_RULES.maxBytes}`);
        return bytes;
      },
    };
  }

  async #contactId(data: JobData, token: string, requests: StepRequests): Promise<string> {
    const contact = data.contact as NonNullable<JobData['contact']>;
    const identities = contactIdentities(contact);
    const known = await this.#o.contacts.find(data.locationId, identities);
    if (known !== undefined) return known;
    const flight = `${data.locationId}\n${identities.join('\n')}`;
    const pending = this.#resolving.get(flight);
    if (pending !== undefined) return pending;
    const resolving = this.#upsert(data, identities, token, requests).finally(() => this.#resolving.delete(flight));
    this.#resolving.set(flight, resolving);
    return resolving;
  }

  async #upsert(data: JobData, identities: string[], token: string, requests: StepRequests): Promise<string> {
    const claimed = await this.#o.contacts.claim(data.locationId, identities[0] as string, randomUUID(), this.#o.claimMs ?? 30_000);
    if (!claimed) {
      // Another process asks HighLevel for this contact now: its answer lands in the directory.
      const known = await this.#o.contacts.find(data.locationId, identities);
      if (known !== undefined) return known;
      throw new RetryLater(500, 'another worker is finding or creating this contact');
    }
    try {
      const contact = data.contact as NonNullable<JobData['contact']>;
      const result = await this.#request('contact', requests, 'upsert', token, 'POST', 'contacts/upsert', {
        json: { locationId: data.locationId, ...contact },
        version: CONTACTS_VERSION,
      });
      const answer = upsertAnswer.safeParse(parseJson(result));
      if (!answer.success)
        throw new StepFailed('contact', result, { class: 'suspect', reason: 'HighLevel answered the upsert without a contact id', maxAttempts: 3 });
      const created = answer.data.new === true;
      await this.#o.contacts.remember(data.locationId, identities, answer.data.contact.id);
      this.#o.onContact?.(data.locationId, created);
      return answer.data.contact.id;
    } catch (error) {
      await this.#o.contacts.unclaim(data.locationId, identities).catch(() => undefined);
      throw error;
    }
  }

  async #conversationId(locationId: string, contactId: string, token: string, requests: StepRequests): Promise<string> {
    const known = await this.#o.contacts.conversationOf(locationId, contactId);
    if (known !== undefined) return known;
    const found = await this.#search(locationId, contactId, token, requests);
    if (found !== undefined) {
      await this.#o.contacts.rememberConversation(locationId, contactId, found);
      return found;
    }
    try {
      const result = await this.#request('conversation', requests, 'conversation', token, 'POST', 'conversations/', {
        json: { locationId, contactId },
        version: CONVERSATIONS_VERSION,
      });
      const answer = createAnswer.safeParse(parseJson(result));
      if (!answer.success)
        throw new StepFailed('conversation', result, { class: 'suspect', reason: 'HighLevel created a conversation without an id', maxAttempts: 3 });
      await this.#o.contacts.rememberConversation(locationId, contactId, answer.data.conversation.id);
      return answer.data.conversation.id;
    } catch (error) {
      // 400 on create: the conversation exists, and the search did not show it yet (issue #5).
      if (!(error instanceof StepFailed) || error.result.outcome.kind !== 'answer' || error.result.outcome.status !== 400) throw error;
      const again = await this.#search(locationId, contactId, token, requests);
      // Retried as a transient failure (an attempt each, 2 s apart at least): search lags a create
      // by seconds, and a 400 for any other reason must not go round for ever at no cost.
      if (again === undefined) {
        throw new StepFailed('conversation', error.result, {
          class: 'transient',
          reason: 'HighLevel refused a new conversation (400) and its search shows none yet',
          retryAfterMs: 2_000,
          maxAttempts: undefined,
        });
      }
      await this.#o.contacts.rememberConversation(locationId, contactId, again);
      return again;
    }
  }

  async #search(locationId: string, contactId: string, token: string, requests: StepRequests): Promise<string | undefined> {
    const result = await this.#request('conversation', requests, 'conversation', token, 'GET', 'conversations/search', {
      query: { locationId, contactId },
      version: CONVERSATIONS_VERSION,
    });
    const answer = searchAnswer.safeParse(parseJson(result));
    return answer.success ? answer.data.conversations.find((c) => c.contactId === undefined || c.contactId === contactId)?.id : undefined;
  }

  async #upload(
    data: JobData,
    files: readonly Upload[],
    ids: { conversationId: string; contactId: string | undefined },
    token: string,
    requests: StepRequests,
  ): Promise<string[]> {
    const urls = new Map<Upload, string>();
    for (const batch of uploadBatches(files)) {
      const form = new FormData();
      let bytes = 0;
      for (const file of batch) {
        const content = await file.bytes();
        bytes += content.length;
        form.append('fileAttachment', new Blob([new Uint8Array(content)]), file.name);
      }
      form.append('conversationId', ids.conversationId);
      if (ids.contactId !== undefined) form.append('contactId', ids.contactId);
      form.append('locationId', data.locationId);
      const result = await this.#request('upload', requests, 'upload', token, 'POST', 'conversations/messages/upload', {
        form,
        version: CONVERSATIONS_VERSION,
      });
      const answer = uploadAnswer.safeParse(parseJson(result));
      const missing = answer.success ? batch.filter((f) => answer.data.uploadedFiles[f.name] === undefined) : batch;
      if (!answer.success || missing.length > 0) {
        throw new StepFailed('upload', result, {
          class: 'suspect',
          reason: `HighLevel's upload answer names no URL for ${missing.map((f) => f.name).join(', ')}`,
          maxAttempts: 3,
        });
      }
      for (const f of batch) urls.set(f, answer.data.uploadedFiles[f.name] as string);
      this.#o.onUpload?.(data.locationId, batch.length, bytes);
    }
    return files.map((f) => urls.get(f) as string);
  }

  /** One request through the budget: a success's result, or `StepFailed` with its slot settled. */
  async #request(
    step: StepFailed['step'],
    requests: StepRequests,
    kind: RequestKind,
    token: string,
    method: 'GET' | 'POST',
    path: string,
    request: Parameters<HighLevelClient['send']>[3],
  ): Promise<PostResult> {
    const slot = await requests.slot();
    await requests.send(slot);
    this.#o.onRequest?.(kind);
    const result = await this.#o.client.send(token, method, path, request, { kind });
    const { outcome } = result;
    if (outcome.kind === 'answer' && outcome.status >= 200 && outcome.status < 300) {
      requests.answered(slot, result);
      return result;
    }
    const verdict = classify(outcome, Date.now());
    if (verdict.class === 'delivered') throw new Error('unreachable: a non-2xx classified as delivered');
    if (verdict.class === 'rate-limited') throw new StepFailed(step, result, verdict, requests.refuse(slot, verdict.retryAfterMs));
    requests.answered(slot, result);
    throw new StepFailed(step, result, verdict);
  }
}

function parseJson(result: PostResult): unknown {
  if (result.outcome.kind !== 'answer') return undefined;
  try {
    return JSON.parse(result.outcome.body) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * The stand-in's contact, conversation and file routes, as HighLevel documents them:
 * `POST /contacts/upsert` (Version 2021-07-28) with the location's duplicate rule,
 * `POST /conversations/` (one conversation per contact; a second create answers 400),
 * `POST /conversations/messages/upload` (multipart, its count, size and type limits) and the file
 * host that serves uploaded files until their URL expires. Each request passes the same gate as the
 * inbound post (auth, the location's one rate window, latency, outage and faults), so contacts,
 * uploads and posts share a budget as they do at HighLevel.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { contactInput, Contacts } from './contacts.ts';
import { conversationExistsMessage, type Conversations } from './conversations.ts';
import type { DuplicateRule, FakeHighLevelConfig, FaultRoute as Route } from './options.ts';
import { contentTypeOf, FILES_PATH, readUploadForm, uploadRefusal, Uploads, type UploadLimits } from './uploads.ts';
import { validateUpsert } from './validate.ts';

export const CONTACTS_VERSION = '2021-07-28';
export const UPSERT_PATH = '/contacts/upsert';
export const CONVERSATIONS_PATH = '/conversations/';
export const UPLOAD_PATH = '/conversations/messages/upload';

/** What the server gives these routes: its gate, its answers and its clocks. */
export interface Gate {
  /** Auth, rate window, latency, version, outage, faults: the location, or undefined once answered. */
  admit(request: FastifyRequest, reply: FastifyReply, route: Route, version: string | undefined): Promise<string | undefined>;
  answer(reply: FastifyReply, status: number, body: unknown): FastifyReply;
  /** Resets the connection when the `dropAfterAccept` fault strikes this route; true when it did. */
  dropAfterAccept(reply: FastifyReply, route: Route): boolean;
  config(): FakeHighLevelConfig;
  /** The stand-in's base URL, where uploaded files are served. */
  url(): string;
  /** Monotonic ms. */
  now(): number;
  newId(): string;
}

export interface ContentStats {
  /** Upserts answered 200, and of those, the ones that created a contact. */
  upserts: number;
  contactsCreated: number;
  conversationsCreated: number;
  /** Upload requests answered 200, the files they carried and their bytes. */
  uploadRequests: number;
  uploads: number;
  uploadBytes: number;
  /** Attachments posted in an inbound message that name a file of this stand-in's host. */
  attachmentsPosted: number;
  /** The oldest such attachment at its post, in ms since its upload. */
  uploadAgeMaxMs: number;
  /** Attachments posted after their URL had expired (a message posted with a dead link). */
  attachmentsExpired: number;
  /** Attachments posted that name no file this host ever served. */
  attachmentsUnknown: number;
}

export function emptyContentStats(): ContentStats {
  return {
    upserts: 0,
    contactsCreated: 0,
    conversationsCreated: 0,
    uploadRequests: 0,
    uploads: 0,
    uploadBytes: 0,
    attachmentsPosted: 0,
    uploadAgeMaxMs: 0,
    attachmentsExpired: 0,
    attachmentsUnknown: 0,
  };
}

export class ContentApi {
  readonly contacts: Contacts;
  readonly uploads: Uploads;
  #stats = emptyContentStats();
  readonly #gate: Gate;
  readonly #conversations: Conversations;

  constructor(gate: Gate, conversations: Conversations) {
    this.#gate = gate;
    this.#conversations = conversations;
    this.contacts = new Contacts(() => gate.newId());
    this.uploads = new Uploads(() => gate.newId());
  }

  stats(): ContentStats {
    return { ...this.#stats };
  }

  reset(): void {
    this.contacts.clear();
    this.uploads.clear();
    this.#stats = emptyContentStats();
  }

  register(app: FastifyInstance): void {
    app.post(UPSERT_PATH, (request, reply) => this.#upsert(request, reply));
    app.post(CONVERSATIONS_PATH, (request, reply) => this.#createConversation(request, reply));
    app.post(UPLOAD_PATH, (request, reply) => this.#upload(request, reply));
    app.get(`${FILES_PATH}/:id/:name`, (request, reply) => this.#serveFile(request, reply));
    app.get('/__admin/contacts', (request) => this.contacts.list((request.query as { locationId?: string }).locationId));
    app.get('/__admin/conversations', (request) => this.#conversations.list((request.query as { locationId?: string }).locationId));
    app.get('/__admin/uploads', () => this.uploads.list());
  }

  /** An inbound body's attachments that name this host's files: how old each was when posted. */
  notePosted(body: Record<string, unknown>): void {
    if (!Array.isArray(body.attachments)) return;
    const now = this.#gate.now();
    for (const url of body.attachments) {
      if (typeof url !== 'string') continue;
      const found = this.uploads.lookup(url, this.#gate.url(), now);
      if (found.kind === 'unknown') {
        if (url.startsWith(`${this.#gate.url()}${FILES_PATH}/`)) this.#stats.attachmentsUnknown += 1;
        continue;
      }
      this.#stats.attachmentsPosted += 1;
      if (found.kind === 'expired') this.#stats.attachmentsExpired += 1;
      else this.#stats.uploadAgeMaxMs = Math.max(this.#stats.uploadAgeMaxMs, Math.round(found.ageMs));
    }
  }

  #rule(locationId: string): DuplicateRule {
    const config = this.#gate.config();
    return { ...config.duplicates, ...config.duplicatesPerLocation[locationId] };
  }

  async #upsert(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const gate = this.#gate;
    const locationId = await gate.admit(request, reply, 'upsert', CONTACTS_VERSION);
    if (locationId === undefined) return reply;
    const verdict = validateUpsert(request.body, { rejectPhones: new Set(gate.config().rejectPhones) });
    if (!verdict.ok) return refuse(gate, reply, verdict.status, verdict.message);
    const body = request.body as Record<string, unknown>;
    if (body.locationId !== locationId) return gate.answer(reply, 403, { statusCode: 403, message: 'The token does not have access to this location' });
    const result = this.contacts.upsert(locationId, contactInput(body), this.#rule(locationId), new Date().toISOString());
    this.#stats.upserts += 1;
    if (result.created) this.#stats.contactsCreated += 1;
    if (gate.dropAfterAccept(reply, 'upsert')) return reply;
    return gate.answer(reply, 200, { new: result.created, contact: result.contact, traceId: gate.newId() });
  }

  async #createConversation(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const gate = this.#gate;
    const locationId = await gate.admit(request, reply, 'conversation', '2021-04-15');
    if (locationId === undefined) return reply;
    const body = (typeof request.body === 'object' && request.body !== null ? request.body : {}) as Record<string, unknown>;
    const problems = [
      ...(typeof body.locationId === 'string' && body.locationId !== '' ? [] : ['locationId should not be empty', 'locationId must be a string']),
      ...(typeof body.contactId === 'string' && body.contactId !== '' ? [] : ['contactId should not be empty', 'contactId must be a string']),
    ];
    if (problems.length > 0) return refuse(gate, reply, 422, problems);
    if (body.locationId !== locationId) return gate.answer(reply, 403, { statusCode: 403, message: 'The token does not have access to this location' });
    const made = this.#conversations.create(locationId, body.contactId as string, new Date().toISOString());
    if (!made.created) return refuse(gate, reply, 400, conversationExistsMessage(body.contactId as string));
    this.#stats.conversationsCreated += 1;
    if (gate.dropAfterAccept(reply, 'conversation')) return reply;
    const { origin: _origin, messages: _messages, ...conversation } = made.conversation;
    return gate.answer(reply, 201, { success: true, conversation });
  }

  async #upload(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const gate = this.#gate;
    const locationId = await gate.admit(request, reply, 'upload', '2021-04-15');
    if (locationId === undefined) return reply;
    if (!request.isMultipart()) return gate.answer(reply, 400, { status: 400, message: 'The request must be multipart/form-data' });
    const config = gate.config();
    const limits: UploadLimits = { maxFiles: config.uploadMaxFiles, maxBytes: config.uploadMaxBytes, types: config.uploadTypes };
    const form = await readUploadForm(request, limits);
    const refusal = uploadRefusal(form, limits);
    if (refusal !== undefined) return gate.answer(reply, refusal.status, refusal);
    const { conversationId, contactId } = form.fields;
    if (form.fields.locationId !== undefined && form.fields.locationId !== locationId) {
      return gate.answer(reply, 403, { status: 403, message: 'The token does not have access to this location' });
    }
    if (conversationId === undefined || conversationId === '') return gate.answer(reply, 400, { status: 400, message: 'conversationId is required' });
    const conversation = this.#conversations.find(locationId, conversationId);
    if (conversation === undefined) return gate.answer(reply, 400, { status: 400, message: `Conversation ${conversationId} not found` });
    const t = gate.now();
    const epochMs = Date.now();
    const uploadedFiles: Record<string, string> = {};
    for (const file of form.files) {
      const stored = this.uploads.add(gate.url(), { locationId, conversationId, contactId: contactId ?? conversation.contactId ?? '' }, file, {
        t,
        epochMs,
        ttlMs: config.uploadTtlMs,
      });
      uploadedFiles[file.name] = stored.url;
      this.#stats.uploads += 1;
      this.#stats.uploadBytes += file.data.length;
    }
    this.#stats.uploadRequests += 1;
    if (gate.dropAfterAccept(reply, 'upload')) return reply;
    return gate.answer(reply, 200, { uploadedFiles, traceId: gate.newId() });
  }

  #serveFile(request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const found = this.uploads.lookup(request.url, this.#gate.url(), this.#gate.now());
    if (found.kind === 'unknown') return reply.code(404).send({ statusCode: 404, message: 'Not Found' });
    // A secure attachment's link past its hour: what a storage service answers a stale signed URL.
    if (found.kind === 'expired') return reply.code(403).send({ statusCode: 403, message: 'Request has expired' });
    return reply.code(200).type(contentTypeOf(found.upload.name)).send(found.data);
  }
}

/** A NestJS-shaped refusal: 422 carries a list of messages, 400 one. */
function refuse(gate: Gate, reply: FastifyReply, status: number, message: string | string[]): FastifyReply {
  return gate.answer(reply, status, { statusCode: status, message, error: status === 422 ? 'Unprocessable Entity' : 'Bad Request' });
}

/**
 * The stand-in's read side, as HighLevel documents it (highlevel-api.md, Reading messages back):
 * one conversation per contact and location; `GET /conversations/{conversationId}/messages`
 * (newest first, `limit` up to 100, `lastMessageId` for the next page) answering
 * `{ messages: { lastMessageId, nextPage, messages: [...] }, traceId }` with `altId` on each
 * message (unless switched off, as a 2026 spec revision allows); `GET /conversations/search`
 * (`locationId`, `contactId`) answering `{ conversations: [...], total }`, blind to a conversation
 * younger than the configured lag (HighLevel's issue #5); `POST /conversations/` creating a
 * contact's conversation, the same one its inbound messages land in.
 */
import { randomBytes } from 'node:crypto';

export interface StoredMessage {
  id: string;
  altId: string | undefined;
  body: string | undefined;
  direction: string;
  dateAdded: string;
  messageType: string;
  conversationId: string;
  contactId: string | undefined;
  locationId: string;
}

/** HighLevel's answer to a second create for a contact (issue #5 quotes it). */
export function conversationExistsMessage(contactId: string): string {
  return `Conversation with the contact id:${contactId} already exists!`;
}

/** A conversation without its messages: what the admin API and the create answer show. */
export interface ConversationSummary {
  id: string;
  locationId: string;
  contactId: string | undefined;
  /** `create`: by `POST /conversations/`; `inbound`: by a message's first post. */
  origin: 'create' | 'inbound';
  dateAdded: string;
  messages: number;
}

interface Conversation {
  locationId: string;
  contactId: string | undefined;
  origin: ConversationSummary['origin'];
  dateAdded: string;
  /** Monotonic ms of creation: what the search lag counts from. */
  createdAt: number;
  messages: StoredMessage[];
}

export class Conversations {
  /** location → contact → conversation id */
  readonly #byContact = new Map<string, Map<string, string>>();
  /** conversation id → its location, contact and messages (oldest first) */
  readonly #conversations = new Map<string, Conversation>();
  readonly #now: () => number;

  /** `now`: the monotonic clock in ms the search lag counts on. */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Creates the contact's conversation; the existing one's id when it has one already. */
  create(
    locationId: string,
    contactId: string,
    dateAdded: string,
  ): { created: true; conversation: ConversationSummary } | { created: false; existingId: string } {
    const contacts = this.#contactsOf(locationId);
    const existingId = contacts.get(contactId);
    if (existingId !== undefined) return { created: false, existingId };
    const conversationId = id();
    contacts.set(contactId, conversationId);
    const conversation: Conversation = { locationId, contactId, origin: 'create', dateAdded, createdAt: this.#now(), messages: [] };
    this.#conversations.set(conversationId, conversation);
    return { created: true, conversation: summary(conversationId, conversation) };
  }

  /** The location's conversation of that id. */
  find(locationId: string, conversationId: string): ConversationSummary | undefined {
    const conversation = this.#conversations.get(conversationId);
    return conversation?.locationId === locationId ? summary(conversationId, conversation) : undefined;
  }

  /** Every conversation of a location (or of all), in creation order. */
  list(locationId?: string): ConversationSummary[] {
    return [...this.#conversations].filter(([, c]) => locationId === undefined || c.locationId === locationId).map(([cid, c]) => summary(cid, c));
  }

  #contactsOf(locationId: string): Map<string, string> {
    const contacts = this.#byContact.get(locationId) ?? new Map<string, string>();
    this.#byContact.set(locationId, contacts);
    return contacts;
  }

  /** Where an accepted message goes: the conversation it names, or its contact's (created on first use). */
  record(locationId: string, body: Record<string, unknown>, messageId: string, dateAdded: string): string {
    const contactId = typeof body.contactId === 'string' ? body.contactId : undefined;
    let conversationId = typeof body.conversationId === 'string' ? body.conversationId : undefined;
    if (conversationId === undefined) {
      const contacts = this.#contactsOf(locationId);
      conversationId = contactId === undefined ? id() : contacts.get(contactId);
      if (conversationId === undefined) {
        conversationId = id();
        if (contactId !== undefined) contacts.set(contactId, conversationId);
      }
    }
    const conversation = this.#conversations.get(conversationId) ?? {
      locationId,
      contactId,
      origin: 'inbound',
      dateAdded,
      createdAt: this.#now(),
      messages: [],
    };
    this.#conversations.set(conversationId, conversation);
    conversation.messages.push({
      id: messageId,
      altId: typeof body.altId === 'string' ? body.altId : undefined,
      body: typeof body.message === 'string' ? body.message : typeof body.html === 'string' ? body.html : undefined,
      direction: typeof body.direction === 'string' ? body.direction : 'inbound',
      // A message imported with its own date takes that date, as history does.
      dateAdded: typeof body.date === 'string' ? body.date : dateAdded,
      messageType: `TYPE_${String(body.type).toUpperCase()}`,
      conversationId,
      contactId,
      locationId,
    });
    return conversationId;
  }

  /** A page of a conversation's messages, newest first; undefined when the location has no such conversation. */
  page(locationId: string, conversationId: string, limit: number, lastMessageId: string | undefined, withAltId: boolean): Record<string, unknown> | undefined {
    const conversation = this.#conversations.get(conversationId);
    if (conversation?.locationId !== locationId) return undefined;
    const newestFirst = [...conversation.messages].reverse().sort((a, b) => Date.parse(b.dateAdded) - Date.parse(a.dateAdded));
    const start = lastMessageId === undefined ? 0 : newestFirst.findIndex((m) => m.id === lastMessageId) + 1;
    const slice = newestFirst.slice(start, start + limit);
    return {
      messages: {
        lastMessageId: slice.at(-1)?.id,
        nextPage: start + limit < newestFirst.length,
        messages: slice.map(({ altId, ...m }) => (withAltId && altId !== undefined ? { ...m, altId } : m)),
      },
      traceId: id(),
    };
  }

  /** A contact's conversations in a location (HighLevel keeps one), blind to those younger than `lagMs`. */
  search(locationId: string, contactId: string, lagMs = 0): Record<string, unknown> {
    const conversationId = this.#byContact.get(locationId)?.get(contactId);
    const conversation = conversationId === undefined ? undefined : this.#conversations.get(conversationId);
    const found =
      conversationId === undefined || conversation === undefined || this.#now() - conversation.createdAt < lagMs
        ? []
        : [{ id: conversationId, contactId, locationId, dateAdded: conversation.dateAdded, lastMessageDate: conversation.messages.at(-1)?.dateAdded }];
    return { conversations: found, total: found.length, traceId: id() };
  }

  clear(): void {
    this.#byContact.clear();
    this.#conversations.clear();
  }
}

function summary(conversationId: string, c: Conversation): ConversationSummary {
  return { id: conversationId, locationId: c.locationId, contactId: c.contactId, origin: c.origin, dateAdded: c.dateAdded, messages: c.messages.length };
}

function id(): string {
  return randomBytes(15).toString('base64url').replace(/[-_]/g, 'x').slice(0, 20);
}

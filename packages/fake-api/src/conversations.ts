/**
 * The stand-in's read side, as HighLevel documents it (highlevel-api.md, Reading messages back):
 * one conversation per contact and location; `GET /conversations/{conversationId}/messages`
 * (newest first, `limit` up to 100, `lastMessageId` for the next page) answering
 * `{ messages: { lastMessageId, nextPage, messages: [...] }, traceId }` with `altId` on each
 * message (unless switched off, as a 2026 spec revision allows); `GET /conversations/search`
 * (`locationId`, `contactId`) answering `{ conversations: [...], total }`.
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

export class Conversations {
  /** location → contact → conversation id */
  readonly #byContact = new Map<string, Map<string, string>>();
  /** conversation id → its location, contact and messages (oldest first) */
  readonly #conversations = new Map<string, { locationId: string; contactId: string | undefined; messages: StoredMessage[] }>();

  /** Where an accepted message goes: the conversation it names, or its contact's (created on first use). */
  record(locationId: string, body: Record<string, unknown>, messageId: string, dateAdded: string): string {
    const contactId = typeof body.contactId === 'string' ? body.contactId : undefined;
    let conversationId = typeof body.conversationId === 'string' ? body.conversationId : undefined;
    if (conversationId === undefined) {
      const contacts = this.#byContact.get(locationId) ?? new Map<string, string>();
      this.#byContact.set(locationId, contacts);
      conversationId = contactId === undefined ? id() : contacts.get(contactId);
      if (conversationId === undefined) {
        conversationId = id();
        if (contactId !== undefined) contacts.set(contactId, conversationId);
      }
    }
    const conversation = this.#conversations.get(conversationId) ?? { locationId, contactId, messages: [] };
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

  /** A contact's conversations in a location (HighLevel keeps one). */
  search(locationId: string, contactId: string): Record<string, unknown> {
    const conversationId = this.#byContact.get(locationId)?.get(contactId);
    const found =
      conversationId === undefined
        ? []
        : [{ id: conversationId, contactId, locationId, lastMessageDate: this.#conversations.get(conversationId)?.messages.at(-1)?.dateAdded }];
    return { conversations: found, total: found.length, traceId: id() };
  }

  clear(): void {
    this.#byContact.clear();
    this.#conversations.clear();
  }
}

function id(): string {
  return randomBytes(15).toString('base64url').replace(/[-_]/g, 'x').slice(0, 20);
}

/**
 * The stand-in's contacts and the upsert policy of `POST /contacts/upsert` as HighLevel's spec
 * describes it: the location's "Allow Duplicate Contact" rule gives the order in which email and
 * phone are looked up; the first field that finds a contact wins; when another contact holds the
 * second field's value, that field is left off the update (no two contacts share it by an upsert).
 * With duplicates allowed, an upsert asking `createNewIfDuplicateAllowed` creates without looking.
 */
import type { ContactMatchField, DuplicateRule } from './options.ts';
import { normalizePhone } from './validate.ts';

export interface StoredContact {
  id: string;
  locationId: string;
  phone?: string;
  email?: string;
  firstName?: string;
  lastName?: string;
  name?: string;
  companyName?: string;
  source?: string;
  tags?: string[];
  dateAdded: string;
  dateUpdated: string;
}

/** What an upsert writes (a body that passed `validateUpsert`). */
export type ContactInput = Partial<Pick<StoredContact, 'phone' | 'email' | 'firstName' | 'lastName' | 'name' | 'companyName' | 'source' | 'tags'>> & {
  createNewIfDuplicateAllowed?: boolean;
};

const WRITTEN = ['phone', 'email', 'firstName', 'lastName', 'name', 'companyName', 'source'] as const;

/** The fields an upsert body writes, phone normalised and email lower-cased as HighLevel stores them. */
export function contactInput(body: Record<string, unknown>): ContactInput {
  const input: ContactInput = {};
  for (const field of WRITTEN) {
    const value = body[field];
    if (typeof value === 'string' && value !== '') input[field] = value;
  }
  if (input.phone !== undefined) input.phone = normalizePhone(input.phone);
  if (input.email !== undefined) input.email = input.email.toLowerCase();
  if (Array.isArray(body.tags)) input.tags = body.tags as string[];
  if (body.createNewIfDuplicateAllowed === true) input.createNewIfDuplicateAllowed = true;
  return input;
}

export interface UpsertResult {
  created: boolean;
  contact: StoredContact;
  /** The field the existing contact was found by (updates only). */
  matchedBy?: ContactMatchField;
  /** A field left off the update because another contact holds its value. */
  ignored?: ContactMatchField[];
}

export class Contacts {
  readonly #byLocation = new Map<string, StoredContact[]>();
  readonly #newId: () => string;

  constructor(newId: () => string) {
    this.#newId = newId;
  }

  upsert(locationId: string, input: ContactInput, rule: DuplicateRule, now: string): UpsertResult {
    const contacts = this.#byLocation.get(locationId) ?? [];
    this.#byLocation.set(locationId, contacts);
    const { createNewIfDuplicateAllowed, ...fields } = input;
    const found = rule.allowDuplicates && createNewIfDuplicateAllowed === true ? undefined : findByRule(contacts, fields, rule.contactMatch);
    if (found === undefined) {
      const contact: StoredContact = { id: this.#newId(), locationId, ...withName(fields), dateAdded: now, dateUpdated: now };
      contacts.push(contact);
      return { created: true, contact: structuredClone(contact) };
    }
    const { contact, field } = found;
    const ignored = rule.contactMatch.filter((f) => f !== field && fields[f] !== undefined && contacts.some((c) => c !== contact && c[f] === fields[f]));
    const update = Object.fromEntries(Object.entries(fields).filter(([f]) => !(ignored as string[]).includes(f))) as ContactInput;
    Object.assign(contact, withName({ firstName: contact.firstName, lastName: contact.lastName, ...update }), { dateUpdated: now });
    return { created: false, contact: structuredClone(contact), matchedBy: field, ...(ignored.length > 0 ? { ignored } : {}) };
  }

  has(locationId: string, contactId: string): boolean {
    return this.#byLocation.get(locationId)?.some((c) => c.id === contactId) === true;
  }

  /** A location's contacts, or every location's, in creation order. */
  list(locationId?: string): StoredContact[] {
    const all = locationId === undefined ? [...this.#byLocation.values()].flat() : (this.#byLocation.get(locationId) ?? []);
    return structuredClone(all);
  }

  clear(): void {
    this.#byLocation.clear();
  }
}

/** The contact the first matching field of `order` finds. */
function findByRule(
  contacts: StoredContact[],
  input: ContactInput,
  order: readonly ContactMatchField[],
): { contact: StoredContact; field: ContactMatchField } | undefined {
  for (const field of order) {
    const value = input[field];
    if (value === undefined) continue;
    const contact = contacts.find((c) => c[field] === value);
    if (contact !== undefined) return { contact, field };
  }
  return undefined;
}

/** `name` from first and last name when the input gives no `name` of its own, as HighLevel fills it. */
function withName<T extends Pick<ContactInput, 'firstName' | 'lastName' | 'name'>>(fields: T): T {
  if (fields.name !== undefined || (fields.firstName === undefined && fields.lastName === undefined)) return dropUndefined(fields);
  return dropUndefined({ ...fields, name: [fields.firstName, fields.lastName].filter((p) => p !== undefined).join(' ') });
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter((entry) => entry[1] !== undefined)) as T;
}

/**
 * `POST /conversations/messages/upload` as HighLevel documents it: reading the multipart form
 * (files under `fileAttachment`, plus `conversationId`, `contactId`, `locationId`), its limits
 * (files per call, bytes per file, types by extension), and the stand-in's file host: every upload
 * gets a URL on the stand-in's own base URL that serves its bytes until it expires, as HighLevel's
 * "secure attachments" live about an hour.
 */
import { createHash } from 'node:crypto';
import type { MultipartFile, MultipartValue } from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';

/** Where the stand-in serves uploaded files: `${url}${FILES_PATH}/<id>/<name>?expires=<epoch ms>`. */
export const FILES_PATH = '/__files';
export const FILE_FIELD = 'fileAttachment';

export interface UploadLimits {
  maxFiles: number;
  maxBytes: number;
  /** Extensions taken, lower case. */
  types: readonly string[];
}

/** One file of a request, read up to `maxBytes` (+ whether it went past). */
export interface ReceivedFile {
  name: string;
  data: Buffer;
  tooLarge: boolean;
}

export interface UploadForm {
  fields: Record<string, string>;
  files: ReceivedFile[];
  /** Files past `maxFiles` (drained, not kept). */
  extraFiles: number;
  /** Files under a field other than `fileAttachment`. */
  unexpectedFields: string[];
}

/**
 * Reads the whole form, so that the answer never races the client's upload; memory stays bounded
 * by `maxFiles × maxBytes` since longer files are cut and extra files drained.
 */
export async function readUploadForm(request: FastifyRequest, limits: UploadLimits): Promise<UploadForm> {
  const form: UploadForm = { fields: {}, files: [], extraFiles: 0, unexpectedFields: [] };
  const parts: AsyncIterableIterator<MultipartFile | MultipartValue> = request.parts({ limits: { fileSize: limits.maxBytes } });
  for await (const part of parts) {
    if (part.type === 'field') {
      form.fields[part.fieldname] = String(part.value);
      continue;
    }
    const data = await part.toBuffer();
    if (part.fieldname !== FILE_FIELD) form.unexpectedFields.push(part.fieldname);
    else if (form.files.length >= limits.maxFiles) form.extraFiles += 1;
    else form.files.push({ name: part.filename, data, tooLarge: part.file.truncated });
  }
  return form;
}

/** HighLevel's refusal of a form's files (`{ status, message }`), or undefined when it takes them all. */
export function uploadRefusal(
  form: Pick<UploadForm, 'files' | 'extraFiles' | 'unexpectedFields'>,
  limits: UploadLimits,
): { status: 400 | 413 | 415; message: string } | undefined {
  if (form.unexpectedFields.length > 0) return { status: 400, message: `Unexpected field ${form.unexpectedFields[0] ?? ''}` };
  // NestJS's file interceptor (multer) answers a count over the limit with 400 "Too many files".
  if (form.extraFiles > 0) return { status: 400, message: 'Too many files' };
  if (form.files.length === 0) return { status: 400, message: `${FILE_FIELD} is required` };
  for (const file of form.files) {
    if (!limits.types.includes(extensionOf(file.name))) {
      return { status: 415, message: `File type not allowed: ${file.name}. Allowed types: ${limits.types.join(', ').toUpperCase()}` };
    }
    if (file.tooLarge) return { status: 413, message: `File too large: ${file.name} is over ${limits.maxBytes} bytes` };
  }
  return undefined;
}

function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot + 1).toLowerCase();
}

/** An upload as the admin API shows it. */
export interface UploadRecord {
  id: string;
  locationId: string;
  conversationId: string;
  contactId: string;
  /** The file name as sent (the key of `uploadedFiles`). */
  name: string;
  bytes: number;
  /** SHA-256 of the content, hex. */
  sha256: string;
  /** Wall-clock ms of the upload. */
  uploadedAt: number;
  /** Wall-clock ms when its URL stops serving it. */
  expiresAt: number;
  url: string;
}

interface StoredUpload extends UploadRecord {
  data: Buffer;
  /** Monotonic ms of the upload and of its expiry: what ages and expiry count on. */
  t: number;
  expiresT: number;
}

/** What a URL on the stand-in's file host names, when asked at monotonic `now`. */
export type UploadLookup =
  { kind: 'live'; upload: UploadRecord; ageMs: number; data: Buffer } | { kind: 'expired'; upload: UploadRecord } | { kind: 'unknown' };

export class Uploads {
  readonly #byId = new Map<string, StoredUpload>();
  readonly #newId: () => string;

  constructor(newId: () => string) {
    this.#newId = newId;
  }

  add(
    baseUrl: string,
    owner: { locationId: string; conversationId: string; contactId: string },
    file: { name: string; data: Buffer },
    at: { t: number; epochMs: number; ttlMs: number },
  ): UploadRecord {
    const id = this.#newId();
    const expiresAt = at.epochMs + at.ttlMs;
    const url = `${baseUrl}${FILES_PATH}/${id}/${encodeURIComponent(file.name)}?expires=${expiresAt}`;
    const stored: StoredUpload = {
      id,
      ...owner,
      name: file.name,
      bytes: file.data.length,
      sha256: createHash('sha256').update(file.data).digest('hex'),
      uploadedAt: at.epochMs,
      expiresAt,
      url,
      data: file.data,
      t: at.t,
      expiresT: at.t + at.ttlMs,
    };
    this.#byId.set(id, stored);
    return record(stored);
  }

  /** The upload a file-host path (`/__files/<id>/<name>`) or a full URL on `baseUrl` names. */
  lookup(urlOrPath: string, baseUrl: string, now: number): UploadLookup {
    const id = uploadIdOf(urlOrPath, baseUrl);
    const stored = id === undefined ? undefined : this.#byId.get(id);
    if (stored === undefined) return { kind: 'unknown' };
    if (now >= stored.expiresT) return { kind: 'expired', upload: record(stored) };
    return { kind: 'live', upload: record(stored), ageMs: now - stored.t, data: stored.data };
  }

  list(): UploadRecord[] {
    return [...this.#byId.values()].map(record);
  }

  clear(): void {
    this.#byId.clear();
  }
}

/** The upload id of a URL on the stand-in's file host; undefined for any other URL. */
export function uploadIdOf(urlOrPath: string, baseUrl: string): string | undefined {
  let url: URL;
  try {
    url = new URL(urlOrPath, baseUrl);
  } catch {
    return undefined;
  }
  if (url.origin !== new URL(baseUrl).origin || !url.pathname.startsWith(`${FILES_PATH}/`)) return undefined;
  return url.pathname.slice(FILES_PATH.length + 1).split('/')[0] || undefined;
}

const CONTENT_TYPES: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  mp4: 'video/mp4',
  mpeg: 'video/mpeg',
  zip: 'application/zip',
  rar: 'application/vnd.rar',
  pdf: 'application/pdf',
  doc: 'application/msword',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  txt: 'text/plain',
  mp3: 'audio/mpeg',
  wav: 'audio/wav',
};

/** The content type the file host serves a name with. */
export function contentTypeOf(name: string): string {
  return CONTENT_TYPES[extensionOf(name)] ?? 'application/octet-stream';
}

function record(stored: StoredUpload): UploadRecord {
  const { id, locationId, conversationId, contactId, name, bytes, sha256, uploadedAt, expiresAt, url } = stored;
  return { id, locationId, conversationId, contactId, name, bytes, sha256, uploadedAt, expiresAt, url };
}
